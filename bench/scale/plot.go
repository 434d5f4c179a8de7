package main

import (
	"bytes"
	"fmt"
	"html"
	"math"
	"strconv"
)

// A figure is one curve's SVG: a row of small panels sharing the x values
// (logarithmic x axis), one panel per measured quantity, each with its
// own linear y axis from zero. The SVG is written by hand: a few lines,
// polylines and text elements.
type figure struct {
	title   string
	xLabel  string
	x       []float64 // ascending, > 0
	xTicks  []string  // a label per x value
	panels  []panel
	columns int // panels per row; 3 when zero
}

type panel struct {
	title  string // with the unit, e.g. "produce MB/s"
	series []series
}

type series struct {
	name string // legend; may be empty when it is the only series
	y    []float64
}

const (
	panelW, panelH           = 300, 210
	marginL, marginR         = 52, 14
	marginT, marginB         = 28, 40
	figTitleH                = 30
	plotW                    = panelW - marginL - marginR
	plotH                    = panelH - marginT - marginB
	legendLine, legendGap    = 14, 4
	fontSize, smallFontSize  = 12, 10
	gridColour, axisColour   = "#ddd", "#444"
	pointRadius, strokeWidth = 2.5, 1.8
)

var colours = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e"}

// svg renders the figure.
func (f figure) svg() []byte {
	cols := f.columns
	if cols <= 0 {
		cols = 3
	}
	cols = min(cols, max(len(f.panels), 1))
	rows := (len(f.panels) + cols - 1) / cols
	w, h := cols*panelW, figTitleH+rows*panelH
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="%d">`+"\n", w, h, w, h, fontSize)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="20" text-anchor="middle" font-size="14" font-weight="bold">%s</text>`+"\n", w/2, esc(f.title))
	for i, p := range f.panels {
		ox, oy := i%cols*panelW, figTitleH+i/cols*panelH
		f.panel(&b, p, float64(ox), float64(oy))
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}

func (f figure) panel(b *bytes.Buffer, p panel, ox, oy float64) {
	left, top := ox+marginL, oy+marginT
	right, bottom := left+plotW, top+plotH
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-weight="bold">%s</text>`+"\n", (left+right)/2, oy+16, esc(p.title))

	ymax := 0.0
	for _, s := range p.series {
		for _, v := range s.y {
			if !math.IsNaN(v) {
				ymax = math.Max(ymax, v)
			}
		}
	}
	step := niceStep(ymax / 4)
	top4 := step * math.Ceil(ymax/step)
	if top4 <= 0 {
		top4 = step
	}
	yPos := func(v float64) float64 { return bottom - v/top4*plotH }
	for v := 0.0; v <= top4*(1+1e-9); v += step {
		y := yPos(v)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", left, y, right, y, gridColour)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" font-size="%d">%s</text>`+"\n", left-4, y+4, smallFontSize, formatTick(v))
	}
	xPos := f.xScale(left, right)
	for i, x := range f.x {
		px := xPos(x)
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", px, top, px, bottom, gridColour)
		label := strconv.FormatFloat(x, 'g', -1, 64)
		if i < len(f.xTicks) {
			label = f.xTicks[i]
		}
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%d">%s</text>`+"\n", px, bottom+14, smallFontSize, esc(label))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle" font-size="%d">%s</text>`+"\n", (left+right)/2, bottom+30, smallFontSize, esc(f.xLabel))
	fmt.Fprintf(b, `<polyline points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="none" stroke="%s"/>`+"\n", left, top, left, bottom, right, bottom, axisColour)

	for si, s := range p.series {
		c := colours[si%len(colours)]
		var pts bytes.Buffer
		for i, v := range s.y {
			if i >= len(f.x) || math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(&pts, "%.1f,%.1f ", xPos(f.x[i]), yPos(v))
		}
		fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="%v"/>`+"\n", bytes.TrimSpace(pts.Bytes()), c, strokeWidth)
		for i, v := range s.y {
			if i >= len(f.x) || math.IsNaN(v) {
				continue
			}
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%v" fill="%s"/>`+"\n", xPos(f.x[i]), yPos(v), pointRadius, c)
		}
		if s.name != "" {
			ly := top + 4 + float64(si*legendLine)
			fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="%v"/>`+"\n", left+6, ly, left+20, ly, c, strokeWidth)
			fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="%d">%s</text>`+"\n", left+20+legendGap, ly+4, smallFontSize, esc(s.name))
		}
	}
}

// xScale maps an x value to a pixel column, logarithmically between the
// first and last x (with a small inset so the end points are not on the
// axes).
func (f figure) xScale(left, right float64) func(float64) float64 {
	const inset = 10
	if len(f.x) == 0 {
		return func(float64) float64 { return left }
	}
	lo, hi := math.Log10(f.x[0]), math.Log10(f.x[len(f.x)-1])
	if hi == lo {
		return func(float64) float64 { return (left + right) / 2 }
	}
	return func(x float64) float64 {
		return left + inset + (math.Log10(x)-lo)/(hi-lo)*(right-left-2*inset)
	}
}

// niceStep is the smallest 1, 2 or 5 times a power of ten at least v;
// 1 for v <= 0.
func niceStep(v float64) float64 {
	if v <= 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= v*(1-1e-12) {
			return m * p
		}
	}
	return 10 * p
}

// formatTick prints an axis value briefly: 0.002, 0.5, 12, 1500, 2e+06.
func formatTick(v float64) string {
	if v != 0 && (math.Abs(v) >= 1e6 || math.Abs(v) < 1e-3) {
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
	return strconv.FormatFloat(math.Round(v*1e6)/1e6, 'f', -1, 64)
}

func esc(s string) string { return html.EscapeString(s) }
