package gossip

import (
	"bytes"
	"strings"
)

// logBridge passes memberlist's log lines ("[LEVEL] memberlist: text") to
// the slog logger at debug level.
type logBridge struct {
	g *Gossip
}

func (l logBridge) Write(p []byte) (int, error) {
	if l.g.closed.Load() {
		return len(p), nil
	}
	line := string(bytes.TrimRight(p, "\r\n"))
	level := ""
	if strings.HasPrefix(line, "[") {
		if i := strings.Index(line, "] "); i > 0 {
			level, line = line[1:i], line[i+2:]
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	l.g.log.Debug(line, "source", "memberlist", "memberlist_level", level)
	return len(p), nil
}
