package cli

// A one-line progress bar for the perf tests, drawn only on a terminal. The
// Kafka-format lines still print: the bar is erased, the line written, and
// the bar redrawn below it, so a terminal shows both and a pipe or file gets
// exactly Kafka's lines.

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

type progressBar struct {
	mu      sync.Mutex
	w       io.Writer
	enabled bool
	total   int64
	unit    string
	start   time.Time
	done    int64
	bytes   int64
	shown   bool
	stop    chan struct{}
	stopped chan struct{}
}

// newProgressBar starts a bar redrawn every 200ms when enabled; otherwise
// every method only passes lines through.
func newProgressBar(w io.Writer, enabled bool, total int64, unit string) *progressBar {
	p := &progressBar{w: w, enabled: enabled, total: total, unit: unit, start: time.Now(),
		stop: make(chan struct{}), stopped: make(chan struct{})}
	if !enabled {
		close(p.stopped)
		return p
	}
	go func() {
		defer close(p.stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.mu.Lock()
				p.draw()
				p.mu.Unlock()
			}
		}
	}()
	return p
}

// set records progress: count units done and bytes moved.
func (p *progressBar) set(count, bytes int64) {
	p.mu.Lock()
	p.done, p.bytes = count, bytes
	p.mu.Unlock()
}

// println writes a line above the bar.
func (p *progressBar) println(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.erase()
	fmt.Fprintln(p.w, line)
	if p.enabled {
		p.draw()
	}
}

// finish removes the bar for good.
func (p *progressBar) finish() {
	if p.enabled {
		select {
		case <-p.stop:
		default:
			close(p.stop)
		}
	}
	<-p.stopped
	p.mu.Lock()
	p.erase()
	p.mu.Unlock()
}

func (p *progressBar) erase() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

func (p *progressBar) draw() {
	const width = 30
	frac := 0.0
	if p.total > 0 {
		frac = float64(p.done) / float64(p.total)
	}
	frac = min(max(frac, 0), 1)
	filled := int(frac * width)
	bar := strings.Repeat("=", filled)
	if filled < width {
		bar += ">" + strings.Repeat(" ", width-filled-1)
	}
	secs := time.Since(p.start).Seconds()
	rate, mb := 0.0, 0.0
	if secs > 0 {
		rate = float64(p.done) / secs
		mb = float64(p.bytes) / secs / (1024 * 1024)
	}
	eta := "-"
	if rate > 0 && p.total > p.done {
		eta = time.Duration(float64(p.total-p.done) / rate * float64(time.Second)).Round(time.Second).String()
	}
	fmt.Fprintf(p.w, "\r\033[K[%s] %3.0f%% %d/%d %s  %.0f %s/s  %.2f MB/s  ETA %s",
		bar, frac*100, p.done, p.total, p.unit, rate, p.unit, mb, eta)
	p.shown = true
}
