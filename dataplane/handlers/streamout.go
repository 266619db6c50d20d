package handlers

import "github.com/gin-gonic/gin"

// streamOut writes a served stream to the client. Events are written as they come and flushed
// before each read from the upstream (when the stream offers that hook, see
// [ChatStream.BeforeRead]) rather than after each one: events that arrived together leave in one
// write, and none waits on a quiet upstream. eachEvent says the caller must flush after each event
// instead: a stream without the hook that may wait between events (the mock provider). A cached
// replay never waits, so it is flushed once, at its end.
type streamOut struct {
	c         *gin.Context
	dirty     bool // written since the last flush
	eachEvent bool
}

// openStream writes a served stream's headers and hooks its flush. The caller must call close
// before the handler returns.
func openStream(c *gin.Context, st *ChatStream) *streamOut {
	served(c, st.Provider(), 0, st.Cached(), st.RateLimit())
	tokensSaved(c, st.TokensSaved())
	costTrailer(c)
	sseHeaders(c)
	o := &streamOut{c: c}
	hooked := st.BeforeRead(o.flush)
	o.eachEvent = !hooked && !st.Cached()
	return o
}

// close unhooks the flush: the hook holds c, which gin recycles once the handler returns.
func (o *streamOut) close(st *ChatStream) { st.BeforeRead(nil) }

// write writes one or more whole events; an error means the client is gone.
func (o *streamOut) write(b []byte) error {
	if _, err := o.c.Writer.Write(b); err != nil {
		return err
	}
	o.dirty = true
	if o.eachEvent {
		o.flush()
	}
	return nil
}

func (o *streamOut) flush() {
	if o.dirty {
		o.dirty = false
		o.c.Writer.Flush()
	}
}
