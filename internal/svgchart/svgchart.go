// Package svgchart draws small bar charts as server-rendered SVG for the
// issuer's console: no script, no inline style attribute (a strict CSP,
// style-src 'self', would block it), colours as SVG presentation
// attributes a stylesheet may override through the class names.
//
// Charts are accessible: the <svg> has role="img" and a <title> (its
// accessible name) and a <desc> listing every label with its values, and
// every bar is labelled with its value in text, so colour is never the
// only carrier of meaning. Labels are agent, user and tool names from the
// trail, chosen by whoever registered them: everything is escaped.
//
//	chart := svgchart.Stacked("Requests per agent, last hour", []string{"reviewer", "writer"},
//		[]svgchart.Series{{Name: "allowed", Values: []int{12, 3}, Class: "allow"}, {Name: "denied", Values: []int{1, 4}, Class: "deny"}})
//	// {{.Chart}} in an html/template
package svgchart

import (
	"fmt"
	"html/template"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Series is one set of values of a stacked chart, one per label. Class
// names its segments (class="bar <Class>") for a stylesheet; it is
// reduced to [A-Za-z0-9_-].
type Series struct {
	Name   string
	Values []int
	Class  string
}

// Layout, in SVG user units (pixels at scale 1).
const (
	width     = 640
	rowHeight = 26
	barHeight = 16
	labelW    = 190 // the label column
	valueW    = 150 // the value text after the longest bar
	top       = 8
	legendH   = 22
	maxLabel  = 22 // runes of a label shown (at about 8 px each, within labelW); the full label is in the row's <title>
)

// Default fills of the series, in order (each 4.5:1 or more against the
// white background, and distinct for the common colour deficiencies:
// blue, orange, then grey).
var palette = []string{"#1f5fa8", "#b34700", "#555555", "#6a3d9a"}

// Bars draws one horizontal bar per label with its value.
func Bars(title string, labels []string, values []int) template.HTML {
	return Stacked(title, labels, []Series{{Name: "", Values: values, Class: "value"}})
}

// Stacked draws one horizontal bar per label, stacked from the series'
// values (allowed then denied, say), each row followed by its values in
// words ("12 allowed, 1 denied"); a legend names the series. Missing and
// negative values count as 0.
func Stacked(title string, labels []string, series []Series) template.HTML {
	var b strings.Builder
	legend := len(series) > 1 || len(series) == 1 && series[0].Name != ""
	head := top
	if legend {
		head += legendH
	}
	height := head + max(len(labels), 1)*rowHeight + top
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 %d %d" width="%d" height="%d" font-family="sans-serif" font-size="13">`, width, height, width, height)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(title))
	b.WriteString(`<desc>`)
	for i, l := range labels {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(esc(l) + ": " + esc(words(series, i)))
	}
	if len(labels) == 0 {
		b.WriteString("no data")
	}
	b.WriteString(`</desc>`)
	if legend {
		x := labelW
		for k, s := range series {
			fmt.Fprintf(&b, `<g class="legend %s"><rect x="%d" y="%d" width="12" height="12" fill="%s"/><text x="%d" y="%d" fill="#222222">%s</text></g>`,
				class(s.Class), x, top, palette[k%len(palette)], x+16, top+11, esc(s.Name))
			x += 28 + 8*utf8.RuneCountInString(s.Name)
		}
	}
	if len(labels) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#222222">No data</text></svg>`, labelW, head+17)
		return template.HTML(b.String())
	}
	most := 0
	for i := range labels {
		most = max(most, total(series, i))
	}
	scale := 0.0
	if most > 0 {
		scale = float64(width-labelW-valueW) / float64(most)
	}
	for i, l := range labels {
		y := head + i*rowHeight
		fmt.Fprintf(&b, `<g class="row"><title>%s: %s</title>`, esc(l), esc(words(series, i)))
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end" fill="#222222">%s</text>`, labelW-8, y+barHeight-3, esc(short(l)))
		x := float64(labelW)
		for k, s := range series {
			v := value(s.Values, i)
			if v == 0 {
				continue
			}
			w := float64(v) * scale
			fmt.Fprintf(&b, `<rect class="bar %s" x="%s" y="%d" width="%s" height="%d" fill="%s"/>`,
				class(s.Class), num(x), y, num(w), barHeight, palette[k%len(palette)])
			x += w
		}
		fmt.Fprintf(&b, `<text class="value" x="%s" y="%d" fill="#222222">%s</text></g>`, num(x+6), y+barHeight-3, esc(words(series, i)))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

func value(vs []int, i int) int {
	if i < len(vs) && vs[i] > 0 {
		return vs[i]
	}
	return 0
}

func total(series []Series, i int) int {
	n := 0
	for _, s := range series {
		n += value(s.Values, i)
	}
	return n
}

// words says a row's values: "12" for one unnamed series, else
// "12 allowed, 1 denied".
func words(series []Series, i int) string {
	if len(series) == 1 && series[0].Name == "" {
		return strconv.Itoa(value(series[0].Values, i))
	}
	parts := make([]string, len(series))
	for k, s := range series {
		parts[k] = strconv.Itoa(value(s.Values, i)) + " " + s.Name
	}
	return strings.Join(parts, ", ")
}

// esc escapes text for SVG content and attribute values.
func esc(s string) string { return template.HTMLEscapeString(s) }

// short cuts a label to maxLabel runes.
func short(s string) string {
	if utf8.RuneCountInString(s) <= maxLabel {
		return s
	}
	r := []rune(s)
	return string(r[:maxLabel-1]) + "…"
}

// class keeps [A-Za-z0-9_-] of a class name.
func class(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return -1
	}, s)
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) }
