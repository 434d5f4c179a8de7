package broker

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// panicCounter is a slog handler that counts logged handler panics.
type panicCounter struct {
	mu sync.Mutex
	n  int
}

func (p *panicCounter) Enabled(context.Context, slog.Level) bool { return true }
func (p *panicCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "panic") {
		p.mu.Lock()
		p.n++
		p.mu.Unlock()
	}
	return nil
}
func (p *panicCounter) WithAttrs([]slog.Attr) slog.Handler { return p }
func (p *panicCounter) WithGroup(string) slog.Handler      { return p }
func (p *panicCounter) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}
