package logbuf

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"
)

// Handler is a [slog.Handler] that writes exactly what [slog.JSONHandler] writes, and writes
// error records at once when its output is a [Writer]. It also builds [Line]s with the same
// bytes as a record with the same attributes, for the hot paths that log one fixed-shape line
// per request.
type Handler struct {
	json *slog.JSONHandler
	// out is where json writes; lines are written there too, one Write each, so the two never
	// interleave inside a line.
	out io.Writer
	// buf is out when out is a [Writer], so that error records can be written at once.
	buf *Writer
	// lines is false when the options change the record's shape (ReplaceAttr, AddSource),
	// which lines do not reproduce: [Handler.Line] then returns nil.
	lines bool
}

// NewJSONHandler returns a Handler that writes to w with opts (nil = slog's defaults). When w
// is not a [Writer], its writes are serialized by a lock of the Handler's own.
func NewJSONHandler(w io.Writer, opts *slog.HandlerOptions) *Handler {
	if opts == nil {
		opts = &slog.HandlerOptions{}
	}
	h := &Handler{lines: opts.ReplaceAttr == nil && !opts.AddSource}
	if bw, ok := w.(*Writer); ok {
		h.out, h.buf = bw, bw
	} else {
		h.out = &lockedWriter{w: w}
	}
	h.json = slog.NewJSONHandler(h.out, opts)
	return h
}

// New returns a JSON logger that writes to out in batches (see [Writer]), and the Writer,
// which the caller must [Writer.Close] before it exits so that the last lines are written.
func New(out io.Writer, level slog.Leveler, o Options) (*slog.Logger, *Writer) {
	w := NewWriter(out, o)
	return slog.New(NewJSONHandler(w, &slog.HandlerOptions{Level: level})), w
}

// Enabled reports whether h writes records of level.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.json.Enabled(ctx, level)
}

// Handle writes r as [slog.JSONHandler] does.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	return flushAfter(h.buf, r.Level, h.json.Handle(ctx, r))
}

// WithAttrs returns a handler that adds attrs to every record. It builds no [Line]s: their
// shape is the bare record's.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &derived{inner: h.json.WithAttrs(attrs), buf: h.buf}
}

// WithGroup returns a handler that puts every record's attributes in group name.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &derived{inner: h.json.WithGroup(name), buf: h.buf}
}

// flushAfter writes buf at once after an error record: an error must reach the output even
// when the process dies right after it.
func flushAfter(buf *Writer, level slog.Level, err error) error {
	if buf != nil && level >= slog.LevelError {
		if ferr := buf.Flush(); err == nil {
			err = ferr
		}
	}
	return err
}

// derived is a Handler with attributes or groups.
type derived struct {
	inner slog.Handler
	buf   *Writer
}

func (d *derived) Enabled(ctx context.Context, level slog.Level) bool {
	return d.inner.Enabled(ctx, level)
}

func (d *derived) Handle(ctx context.Context, r slog.Record) error {
	return flushAfter(d.buf, r.Level, d.inner.Handle(ctx, r))
}

func (d *derived) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &derived{inner: d.inner.WithAttrs(attrs), buf: d.buf}
}

func (d *derived) WithGroup(name string) slog.Handler {
	return &derived{inner: d.inner.WithGroup(name), buf: d.buf}
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Line is one log line being built by [Handler.Line]: the same bytes as the record
// slog.LogAttrs would write with the same message and attributes in the same order. Keys
// must not be empty. A Line is used by one goroutine and is finished by [Line.Write].
type Line struct {
	b     []byte
	h     *Handler
	level slog.Level
}

var linePool = sync.Pool{New: func() any { return &Line{b: make([]byte, 0, 512)} }}

// Line starts a line of level with message msg logged at t, or returns nil when h does not
// write level or cannot build lines for its options; the caller then logs through slog or
// not at all.
func (h *Handler) Line(t time.Time, level slog.Level, msg string) *Line {
	if !h.lines || !h.json.Enabled(context.Background(), level) {
		return nil
	}
	l := linePool.Get().(*Line)
	l.h, l.level = h, level
	b := append(l.b[:0], '{')
	if !t.IsZero() {
		b = append(b, `"time":`...)
		if y := t.Year(); y < 0 || y >= 10000 {
			// What slog writes for such a year, kept so that both paths stay one format.
			b = appendString(b, "!ERROR:time.Time year outside of range [0,9999]")
		}
		b = append(b, '"')
		b = appendRFC3339Nano(b, t)
		b = append(b, `",`...)
	}
	b = append(b, `"level":`...)
	b = appendString(b, level.String())
	b = append(b, `,"msg":`...)
	l.b = appendString(b, msg)
	return l
}

func (l *Line) key(k string) {
	l.b = append(l.b, ',')
	l.b = appendString(l.b, k)
	l.b = append(l.b, ':')
}

// Str adds a string attribute.
func (l *Line) Str(key, v string) {
	l.key(key)
	l.b = appendString(l.b, v)
}

// Int adds an integer attribute.
func (l *Line) Int(key string, v int64) {
	l.key(key)
	l.b = appendInt(l.b, v)
}

// Float adds a float attribute, formatted as slog formats float64 values.
func (l *Line) Float(key string, v float64) {
	l.key(key)
	l.b = appendFloat(l.b, v)
}

// Hex adds a string attribute whose value is v in lower-case hexadecimal, as the String
// methods of trace and span IDs write them.
func (l *Line) Hex(key string, v []byte) {
	l.key(key)
	l.b = appendHex(l.b, v)
}

// Write ends the line, writes it in one Write to the handler's output (at once for error
// lines) and recycles l, which must not be used afterwards.
func (l *Line) Write() error {
	l.b = append(l.b, '}', '\n')
	_, err := l.h.out.Write(l.b)
	err = flushAfter(l.h.buf, l.level, err)
	l.h = nil
	if cap(l.b) <= 16<<10 {
		linePool.Put(l)
	}
	return err
}
