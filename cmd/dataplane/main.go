// Command dataplane is the AI gateway: it serves /api/ai/* and the OpenAI-compatible /v1/*
// on port 3109, hot-loading its configuration from a folder of manifests (standalone) or from
// the snapshot Secret the operator publishes (in a cluster). See [Run] for the flags.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := Run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "dataplane:", err)
		os.Exit(1)
	}
}
