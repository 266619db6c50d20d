// Package logbuf is the data plane's log output: a [Writer] that gathers log lines and writes
// them in batches, and a JSON [Handler] for log/slog whose records are byte for byte those of
// slog's JSONHandler, plus a [Line] builder that writes fixed-shape lines (the access log)
// without going through slog's attribute machinery.
//
// One write system call per request was a visible share of a request's CPU; batching keeps
// each line's delay under [DefaultInterval], writes error lines at once, and [Writer.Close]
// writes whatever is left, so a graceful shutdown loses nothing.
package logbuf

import (
	"io"
	"sync"
	"time"
)

// Defaults of [Options].
const (
	// DefaultInterval bounds how long a line may wait in the buffer.
	DefaultInterval = 100 * time.Millisecond
	// DefaultSize is the buffered size past which the buffer is written at once.
	DefaultSize = 64 << 10
)

// Options tune a [Writer]; zero fields take the defaults.
type Options struct {
	// Interval is the longest a buffered line waits before it is written.
	Interval time.Duration
	// Size is the number of buffered bytes that triggers a write.
	Size int
}

// Writer buffers what is written to it and writes it to its output in batches: when Size
// bytes are buffered, Interval after the first buffered byte, on [Writer.Flush] and on
// [Writer.Close]. Each Write is kept whole (a line is never split between two batches'
// writes), and Writes are safe for concurrent use.
type Writer struct {
	out      io.Writer
	interval time.Duration
	size     int

	mu     sync.Mutex
	buf    []byte
	timer  *time.Timer
	armed  bool
	closed bool
	// err is the first error the output returned since it was last reported.
	err error
}

// NewWriter returns a Writer that writes to out.
func NewWriter(out io.Writer, o Options) *Writer {
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Size <= 0 {
		o.Size = DefaultSize
	}
	w := &Writer{out: out, interval: o.Interval, size: o.Size, buf: make([]byte, 0, o.Size+o.Size/4)}
	w.timer = time.AfterFunc(time.Hour, w.tick)
	w.timer.Stop()
	return w
}

// Write buffers p. It returns the error of an earlier batch the output refused, once, so
// that a broken output still shows up to whoever logs; after [Writer.Close] it writes through.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= w.size {
		w.flushLocked()
	} else if !w.armed {
		w.armed = true
		w.timer.Reset(w.interval)
	}
	if err := w.err; err != nil {
		w.err = nil
		return len(p), err
	}
	return len(p), nil
}

// tick writes the buffer when the interval of its oldest byte has passed.
func (w *Writer) tick() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.armed = false
	w.flushLocked()
}

// flushLocked writes the buffer in one call. A failed batch is dropped, as an unbuffered
// line the output refused would have been, and its error kept for the next caller.
func (w *Writer) flushLocked() {
	if len(w.buf) == 0 {
		return
	}
	_, err := w.out.Write(w.buf)
	if err != nil && w.err == nil {
		w.err = err
	}
	if cap(w.buf) > 4*w.size {
		// One huge line grew the buffer; do not keep it for good.
		w.buf = make([]byte, 0, w.size+w.size/4)
	} else {
		w.buf = w.buf[:0]
	}
}

// Flush writes what is buffered and returns the output's error, if any since the last report.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.flushLocked()
	err := w.err
	w.err = nil
	return err
}

// Close writes what is buffered and stops buffering: later writes go straight to the output,
// so that lines logged after Close (deferred cleanups) are not lost either. It does not
// close the output.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timer.Stop()
	w.armed = false
	w.flushLocked()
	w.closed = true
	err := w.err
	w.err = nil
	return err
}
