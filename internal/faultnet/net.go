package faultnet

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"sync"
)

// Net is a set of named links (proxies), for faults over groups of them.
// Its methods are safe for concurrent use.
type Net struct {
	mu    sync.Mutex
	links map[string]*Proxy
	names []string // in the order added
}

// NewNet returns an empty Net.
func NewNet() *Net { return &Net{links: map[string]*Proxy{}} }

// Add starts a link named name: a proxy on 127.0.0.1 (a port of the
// kernel's choosing) to target.
func (n *Net) Add(name, target string) (*Proxy, error) {
	return n.AddAt(name, "", target)
}

// AddAt is Add with the proxy's listen address given ("" as in Listen).
func (n *Net) AddAt(name, listen, target string) (*Proxy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.links == nil {
		return nil, errors.New("faultnet: Net is closed")
	}
	if n.links[name] != nil {
		return nil, fmt.Errorf("faultnet: link %q already exists", name)
	}
	p, err := Listen(listen, target)
	if err != nil {
		return nil, err
	}
	n.links[name] = p
	n.names = append(n.names, name)
	return p, nil
}

// Link returns the link named name, or nil.
func (n *Net) Link(name string) *Proxy {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.links[name]
}

// Names returns the links' names in the order they were added.
func (n *Net) Names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.names)
}

// Isolate cuts the links matching the patterns: names, or path.Match
// patterns such as "2->*". It cuts nothing and returns an error if a
// pattern is malformed or matches no link.
func (n *Net) Isolate(patterns ...string) error {
	links, err := n.match(patterns)
	if err != nil {
		return err
	}
	for _, p := range links {
		p.Cut()
	}
	return nil
}

// Heal heals the links matching the patterns (see Isolate and Proxy.Heal).
func (n *Net) Heal(patterns ...string) error {
	links, err := n.match(patterns)
	if err != nil {
		return err
	}
	for _, p := range links {
		p.Heal()
	}
	return nil
}

// HealAll returns every link to a clean network: no cut (blackholed
// connections are reset, as by Proxy.Heal), no delay, no drops.
func (n *Net) HealAll() {
	for _, p := range n.all() {
		p.SetDelay(0)
		p.SetDropRate(0)
		p.Heal()
	}
}

// Close closes every link.
func (n *Net) Close() error {
	n.mu.Lock()
	links := n.links
	n.links, n.names = nil, nil
	n.mu.Unlock()
	var errs []error
	for _, p := range links {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// String lists the links with faults, e.g. "1->2: cut; repl-2: delay
// 50ms, drop 0.10", or "no faults".
func (n *Net) String() string {
	n.mu.Lock()
	var f []string
	for _, name := range n.names {
		if s := n.links[name].String(); s != "ok" {
			f = append(f, name+": "+s)
		}
	}
	n.mu.Unlock()
	if len(f) == 0 {
		return "no faults"
	}
	return strings.Join(f, "; ")
}

func (n *Net) all() []*Proxy {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Proxy, 0, len(n.names))
	for _, name := range n.names {
		out = append(out, n.links[name])
	}
	return out
}

// match returns the links matching any of patterns, each once.
func (n *Net) match(patterns []string) ([]*Proxy, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []*Proxy
	seen := map[string]bool{}
	for _, pat := range patterns {
		found := false
		for _, name := range n.names {
			ok, err := path.Match(pat, name)
			if err != nil {
				return nil, fmt.Errorf("faultnet: pattern %q: %w", pat, err)
			}
			if ok {
				found = true
				if !seen[name] {
					seen[name] = true
					out = append(out, n.links[name])
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("faultnet: no link matches %q (links: %s)", pat, strings.Join(n.names, ", "))
		}
	}
	return out, nil
}
