// Package console is Gregor's web console: overview, topics (with a
// message browser), consumer groups (with lag over the last hour) and,
// when enabled, admin actions.
//
// It is a Kafka client like any other: everything it shows comes from the
// broker over the Kafka protocol, through franz-go's kadm and kgo, never
// from the broker's memory. So it works the same against any broker of
// the cluster, and shows what a client would see.
//
// Pages are server-rendered with html/template; the little interactivity
// there is uses vendored htmx (the message browser, live tables) and
// uPlot (charts). No build step: templates and scripts are embedded.
//
// A sampler goroutine records each group's lag and each topic's end
// offsets every Options.SampleInterval, in memory, for the last hour:
// the lag charts and message rates come from it. Lag numbers on pages are
// computed when the page is asked for.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure a console.
type Options struct {
	// Brokers are the seed brokers, host:port.
	Brokers []string
	// Admin enables the admin actions (gregor.console.admin.enable).
	Admin bool
	// Version is the broker's software version, shown on the overview.
	Version string
	// SampleInterval is how often lag and end offsets are sampled for
	// the charts; 0 means 5 s. One hour of samples is kept.
	SampleInterval time.Duration
	Logger         *slog.Logger
	// Dial, if set, opens the console's connections to the broker instead
	// of TCP: the broker it is built into hands it in-process connections,
	// so the console neither uses a port nor counts against the connection
	// limits meant for clients.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Console serves the web console. Close stops its sampler and client.
type Console struct {
	opts  Options
	log   *slog.Logger
	cl    *kgo.Client
	adm   *kadm.Client
	pages map[string]*template.Template
	mux   *http.ServeMux
	hist  *history

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New makes a console and starts its sampler. The client connects lazily,
// so the broker need not be up yet.
func New(opts Options) (*Console, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("console: no brokers")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SampleInterval <= 0 {
		opts.SampleInterval = 5 * time.Second
	}
	// kadm's admin calls use the client's cached metadata for up to
	// MetadataMinAge (5 s by default): a page must show a topic created a
	// moment ago.
	copts := []kgo.Opt{kgo.SeedBrokers(opts.Brokers...), kgo.ClientID("gregor-console"), kgo.MetadataMinAge(100 * time.Millisecond)}
	if opts.Dial != nil {
		copts = append(copts, kgo.Dialer(opts.Dial))
	}
	cl, err := kgo.NewClient(copts...)
	if err != nil {
		return nil, err
	}
	c := &Console{
		opts: opts,
		log:  opts.Logger,
		cl:   cl,
		adm:  kadm.NewClient(cl),
		hist: newHistory(int(time.Hour / opts.SampleInterval)),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if err := c.parseTemplates(); err != nil {
		cl.Close()
		return nil, err
	}
	c.routes()
	go c.sampleLoop()
	return c, nil
}

// Close stops the sampler and closes the Kafka client.
func (c *Console) Close() {
	c.once.Do(func() {
		close(c.stop)
		<-c.done
		c.cl.Close()
	})
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

func (c *Console) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(http.FileServerFS(static))))
	m.HandleFunc("GET /{$}", c.overview)
	m.HandleFunc("GET /topics", c.topics)
	m.HandleFunc("GET /topics/{topic}", c.topic)
	m.HandleFunc("GET /topics/{topic}/messages", c.messages)
	m.HandleFunc("GET /groups", c.groups)
	m.HandleFunc("GET /groups/{group}", c.group)
	m.HandleFunc("GET /groups/{group}/lag", c.groupLagTable)
	m.HandleFunc("GET /api/throughput.json", c.throughputJSON)
	m.HandleFunc("GET /api/topics/{topic}/rate.json", c.topicRateJSON)
	m.HandleFunc("GET /api/groups/{group}/lag.json", c.groupLagJSON)
	m.HandleFunc("POST /topics", c.admin(c.createTopic))
	m.HandleFunc("POST /topics/{topic}/configs", c.admin(c.alterConfig))
	m.HandleFunc("POST /topics/{topic}/delete-records", c.admin(c.deleteRecords))
	m.HandleFunc("POST /groups/{group}/reset-offsets", c.admin(c.resetOffsets))
	c.mux = m
}

func cacheFor(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		h.ServeHTTP(w, r)
	})
}

// admin guards an admin action: off unless enabled, and only from a page
// of this console (a cross-site form post is refused).
func (c *Console) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !c.opts.Admin {
			http.Error(w, "admin actions are off (gregor.console.admin.enable=false)", http.StatusForbidden)
			return
		}
		if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
			http.Error(w, "cross-site request refused", http.StatusForbidden)
			return
		}
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				http.Error(w, "cross-origin request refused", http.StatusForbidden)
				return
			}
		}
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h(w, r)
	}
}

// done redirects back to a page with an outcome message.
func done(w http.ResponseWriter, r *http.Request, to string, err error, okMsg string) {
	q := url.Values{}
	if err != nil {
		q.Set("err", err.Error())
	} else {
		q.Set("ok", okMsg)
	}
	http.Redirect(w, r, to+"?"+q.Encode(), http.StatusSeeOther)
}

// reqCtx bounds a page's Kafka requests.
func reqCtx(r *http.Request) (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.Context(), 10*time.Second)
}

func (c *Console) parseTemplates() error {
	funcs := template.FuncMap{
		"bytes": humanBytes,
		"join":  joinInt32s,
		"ago":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
		"pathq": url.PathEscape,
		"rate":  func(f float64) string { return fmt.Sprintf("%.1f/s", f) },
		"lower": strings.ToLower,
		"browser": func(d topicData) browserData {
			parts := make([]int32, len(d.Partitions))
			for i, p := range d.Partitions {
				parts[i] = p.Partition
			}
			return browserData{Topic: d.Name, Parts: parts, Form: d.Browse, Formats: []string{"auto", "text", "json", "hex"}}
		},
	}
	c.pages = map[string]*template.Template{}
	for _, p := range []string{"overview", "topics", "topic", "groups", "group", "messages", "grouplag"} {
		t, err := template.New(p).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html", "templates/"+p+".html")
		if err != nil {
			return fmt.Errorf("console: template %s: %w", p, err)
		}
		c.pages[p] = t
	}
	return nil
}

// browserData fills the message browser's form.
type browserData struct {
	Topic   string
	Parts   []int32
	Form    browseForm
	Formats []string
}

// page is what every page template gets.
type page struct {
	Title string
	Nav   string
	Admin bool
	OK    string
	Err   string
	Data  any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, name, title, nav string, data any) {
	p := page{Title: title, Nav: nav, Admin: c.opts.Admin, OK: r.URL.Query().Get("ok"), Err: r.URL.Query().Get("err"), Data: data}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	entry := "layout"
	if r.Header.Get("HX-Request") == "true" && (name == "messages" || name == "grouplag") {
		entry = "fragment" // htmx swaps in the fragment alone
	}
	if err := c.pages[name].ExecuteTemplate(w, entry, p); err != nil {
		c.log.Warn("console: render", "page", name, "err", err)
	}
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	c.log.Info("console: request failed", "path", r.URL.Path, "err", err)
	http.Error(w, "Kafka request failed: "+err.Error(), http.StatusBadGateway)
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

func joinInt32s(is []int32) string {
	s := make([]string, len(is))
	for i, v := range is {
		s[i] = fmt.Sprint(v)
	}
	return strings.Join(s, ",")
}
