package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

func TestStopAllEndsTheStartedProcessGroup(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	var g Group
	// The shell starts a child in its group: a stop must reach that one too.
	p, err := g.Start("sleeper", sh, nil, filepath.Join(t.TempDir(), "sleeper.log"), nil, "-c", "sleep 300 & wait")
	if err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(-p.PID, 0) != nil {
		t.Fatal("the process group is not running after Start")
	}
	g.StopAll()
	select {
	case <-p.Done:
	default:
		t.Fatal("StopAll returned before the process exited")
	}
	// The shell's child got the signal too; it is gone once its new parent has reaped it.
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(-p.PID, 0) != syscall.ESRCH {
		if time.Now().After(deadline) {
			t.Fatal("the process group still has members 5 s after StopAll")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStatusBytesReadsOwnRSS(t *testing.T) {
	if rss := StatusBytes(os.Getpid(), "VmRSS:"); rss < 1<<20 {
		t.Fatalf("VmRSS of the test = %d bytes", rss)
	}
	if v := StatusBytes(os.Getpid(), "NoSuchField:"); v != 0 {
		t.Fatalf("a missing field read %d", v)
	}
}
