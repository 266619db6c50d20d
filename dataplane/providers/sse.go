package providers

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// ErrLineTooLong is returned by the stream readers when an upstream line exceeds the bound.
var ErrLineTooLong = errors.New("stream line too long")

// SSEEvent is one dispatched Server-Sent Event.
type SSEEvent struct {
	// Event is the "event:" field, empty when the server sent none (the spec's "message").
	Event string
	// Data is the "data:" lines joined with "\n".
	Data []byte
}

// SSEReader parses a text/event-stream per the WHATWG spec: LF, CR or CRLF line ends, comment
// lines starting with ':', multi-line data, a single optional space after the colon. Lines and
// events are bounded so that a hostile upstream cannot make the gateway buffer without limit.
type SSEReader struct {
	sc    *bufio.Scanner
	max   int
	event string
	data  []byte
	has   bool
	// reuse keeps data's array for the next event, so an event's Data is valid only until the
	// next call of Next; set for the relayed streams, whose decoders copy what they keep.
	reuse bool
}

// initialLineBuffer is a stream reader's first line buffer. It is held for the whole stream, and
// the connection's own read buffer sits below it, so it need only hold a line: an OpenAI or
// Anthropic chunk line is 100 to 400 bytes, and the scanner doubles the buffer (up to the line
// bound) for a longer one, once per stream. The adapters' relayed streams start at
// [relayLineBuffer] instead, trading 4 KiB per open stream (4 MiB for a thousand) for fewer
// writes to their clients.
const initialLineBuffer = 512

// NewSSEReader reads events from r; maxLine bounds one line and one event's data (0 = 1 MiB).
func NewSSEReader(r io.Reader, maxLine int) *SSEReader {
	return newSSEReaderSize(r, maxLine, initialLineBuffer)
}

// newSSEReaderSize is NewSSEReader with the first line buffer of size bytes.
func newSSEReaderSize(r io.Reader, maxLine, size int) *SSEReader {
	if maxLine <= 0 {
		maxLine = maxLineBytes
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(size, maxLine+2)), maxLine+2)
	sc.Split(scanLinesAnyEOL)
	return &SSEReader{sc: sc, max: maxLine}
}

// Next returns the next event with data, or io.EOF at the end of the stream. An event pending
// when the stream ends without a blank line is still returned, since some servers omit it.
func (s *SSEReader) Next() (SSEEvent, error) {
	for s.sc.Scan() {
		line := s.sc.Bytes()
		if len(line) == 0 {
			if ev, ok := s.dispatch(); ok {
				return ev, nil
			}
			continue
		}
		if line[0] == ':' {
			continue
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "event":
			s.event = eventName(value)
		case "data":
			if len(s.data)+len(value)+1 > s.max {
				return SSEEvent{}, ErrLineTooLong
			}
			if s.has {
				s.data = append(s.data, '\n')
			}
			s.data = append(s.data, value...)
			s.has = true
		}
		// id and retry fields do not matter to a one-shot upstream call.
	}
	if err := s.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return SSEEvent{}, ErrLineTooLong
		}
		return SSEEvent{}, err
	}
	if ev, ok := s.dispatch(); ok {
		return ev, nil
	}
	return SSEEvent{}, io.EOF
}

// eventName is string(v), without an allocation for the event names Anthropic streams, every
// event of which is named.
func eventName(v []byte) string {
	switch string(v) { // compared without a conversion
	case "content_block_delta":
		return "content_block_delta"
	case "content_block_start":
		return "content_block_start"
	case "content_block_stop":
		return "content_block_stop"
	case "message_start":
		return "message_start"
	case "message_delta":
		return "message_delta"
	case "message_stop":
		return "message_stop"
	case "ping":
		return "ping"
	}
	return string(v)
}

func (s *SSEReader) dispatch() (SSEEvent, bool) {
	if !s.has {
		s.event = ""
		return SSEEvent{}, false
	}
	ev := SSEEvent{Event: s.event, Data: s.data}
	s.event, s.data, s.has = "", nil, false
	if s.reuse {
		s.data = ev.Data[:0]
	}
	return ev, true
}

// scanLinesAnyEOL splits on LF, CR or CRLF. A CR at the end of the buffer waits for more data
// so that a CRLF split across two reads is one line end, not two.
func scanLinesAnyEOL(data []byte, atEOF bool) (int, []byte, error) {
	if atEOF && len(data) == 0 {
		return 0, nil, nil
	}
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		if data[i] == '\n' {
			return i + 1, data[:i], nil
		}
		if i+1 < len(data) {
			if data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
		if atEOF {
			return i + 1, data[:i], nil
		}
		return 0, nil, nil
	}
	if atEOF {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// NDJSONReader reads newline-delimited JSON (Ollama's stream format): one value per line,
// blank lines skipped, lines bounded.
type NDJSONReader struct {
	sc  *bufio.Scanner
	max int
}

// NewNDJSONReader reads lines from r; maxLine bounds one line (0 = 1 MiB).
func NewNDJSONReader(r io.Reader, maxLine int) *NDJSONReader {
	return newNDJSONReaderSize(r, maxLine, initialLineBuffer)
}

// newNDJSONReaderSize is NewNDJSONReader with the first line buffer of size bytes.
func newNDJSONReaderSize(r io.Reader, maxLine, size int) *NDJSONReader {
	if maxLine <= 0 {
		maxLine = maxLineBytes
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, min(size, maxLine+2)), maxLine+2)
	sc.Split(scanLinesAnyEOL)
	return &NDJSONReader{sc: sc, max: maxLine}
}

// Next returns the next non-blank line, or io.EOF.
func (n *NDJSONReader) Next() ([]byte, error) {
	for n.sc.Scan() {
		line := bytes.TrimSpace(n.sc.Bytes())
		if len(line) > n.max { // the scanner's buffer leaves room for a line end
			return nil, ErrLineTooLong
		}
		if len(line) > 0 {
			return line, nil
		}
	}
	if err := n.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, ErrLineTooLong
		}
		return nil, err
	}
	return nil, io.EOF
}

// relayLineBuffer is the first line buffer of the streams of every HTTP adapter, whose client is
// flushed before each read of the upstream body (see [BeforeReader]): a read that takes in all
// the events the upstream already sent (several per TCP segment when it writes faster than the
// relay reads) makes one write to the client of them, where a line-sized buffer made one per
// event or two. An Anthropic delta is two lines and ~200 bytes, a Gemini chunk ~300: 512 bytes
// held barely two of them.
const relayLineBuffer = 4 << 10
