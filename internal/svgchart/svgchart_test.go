package svgchart

import (
	"bytes"
	"encoding/xml"
	"html/template"
	"io"
	"strconv"
	"strings"
	"testing"
)

// node is a parsed SVG element.
type node struct {
	Name     string
	Attrs    map[string]string
	Text     string
	Children []*node
}

func parse(t *testing.T, s template.HTML) *node {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(s)))
	var stack []*node
	var root *node
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, s)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{Name: tok.Name.Local, Attrs: map[string]string{}}
			for _, a := range tok.Attr {
				n.Attrs[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].Text += string(tok)
			}
		}
	}
	return root
}

func (n *node) all(name string) []*node {
	var out []*node
	var walk func(*node)
	walk = func(m *node) {
		if m.Name == name {
			out = append(out, m)
		}
		for _, c := range m.Children {
			walk(c)
		}
	}
	walk(n)
	return out
}

func TestBarsShape(t *testing.T) {
	out := Bars("Requests per tool", []string{"read_diff", "write_file", "search"}, []int{12, 0, 3})
	root := parse(t, out)
	if root.Name != "svg" || root.Attrs["role"] != "img" {
		t.Fatalf("root %s role %q, want svg role img", root.Name, root.Attrs["role"])
	}
	if root.Children[0].Name != "title" || root.Children[0].Text != "Requests per tool" {
		t.Fatalf("first child %s %q, want the title", root.Children[0].Name, root.Children[0].Text)
	}
	if d := root.Children[1]; d.Name != "desc" || d.Text != "read_diff: 12; write_file: 0; search: 3" {
		t.Fatalf("desc %q", d.Text)
	}
	rects := root.all("rect")
	if len(rects) != 2 {
		t.Fatalf("%d bars, want 2 (a zero has none)", len(rects))
	}
	w0, _ := strconv.ParseFloat(rects[0].Attrs["width"], 64)
	w1, _ := strconv.ParseFloat(rects[1].Attrs["width"], 64)
	if w0 != 4*w1 {
		t.Errorf("12's bar (%s) is not 4 times 3's (%s)", rects[0].Attrs["width"], rects[1].Attrs["width"])
	}
	var texts []string
	for _, tx := range root.all("text") {
		texts = append(texts, tx.Text)
	}
	if got := strings.Join(texts, "|"); got != "read_diff|12|write_file|0|search|3" {
		t.Errorf("texts %q: every label and value in words", got)
	}
}

func TestStackedShape(t *testing.T) {
	out := Stacked("Per agent", []string{"reviewer", "writer"}, []Series{
		{Name: "allowed", Values: []int{5, 1}, Class: "allow"},
		{Name: "denied", Values: []int{2}, Class: "deny\" onclick=\"x"},
	})
	root := parse(t, out)
	var rows []string
	for _, g := range root.all("g") {
		if g.Attrs["class"] == "row" {
			rows = append(rows, g.Children[0].Text)
		}
	}
	if strings.Join(rows, "|") != "reviewer: 5 allowed, 2 denied|writer: 1 allowed, 0 denied" {
		t.Errorf("rows %q", rows)
	}
	classes := map[string]int{}
	for _, r := range root.all("rect") {
		classes[r.Attrs["class"]]++
		if r.Attrs["fill"] == "" {
			t.Error("a bar without a fill attribute")
		}
	}
	if classes["bar allow"] != 2 || classes["bar denyonclickx"] != 1 {
		t.Errorf("bar classes %v", classes)
	}
	var legend []string
	for _, g := range root.all("g") {
		if strings.HasPrefix(g.Attrs["class"], "legend") {
			legend = append(legend, g.all("text")[0].Text)
		}
	}
	if strings.Join(legend, ",") != "allowed,denied" {
		t.Errorf("legend %q", legend)
	}
}

// Labels are attacker-chosen (agent and tool names): they come out as
// text, never markup, and nothing needs an inline style.
func TestEscaping(t *testing.T) {
	evil := `<script>alert(1)</script>"'&`
	long := strings.Repeat("é", 40) + "<b>"
	out := Stacked(evil, []string{evil, long}, []Series{{Name: evil, Values: []int{1, 2}}})
	s := string(out)
	for _, bad := range []string{"<script", "<b>", "style=", "onclick", `"'&<`} {
		if strings.Contains(s, bad) {
			t.Errorf("output contains %q:\n%s", bad, s)
		}
	}
	root := parse(t, out)
	if root.Children[0].Text != evil {
		t.Errorf("title %q, want the label as text", root.Children[0].Text)
	}
	found := false
	for _, tx := range root.all("text") {
		if tx.Text == evil {
			found = true
		}
		if strings.HasPrefix(tx.Text, "éé") && !strings.HasSuffix(tx.Text, "…") {
			t.Errorf("long label not cut: %q", tx.Text)
		}
	}
	if !found {
		t.Error("the label is not shown as text")
	}
	// In a page: html/template takes it as it is, once.
	var buf bytes.Buffer
	tpl := template.Must(template.New("").Parse(`<p>{{.}}</p>`))
	if err := tpl.Execute(&buf, out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<svg") || strings.Contains(buf.String(), "&amp;lt;") {
		t.Errorf("in a template: %s", buf.String())
	}
}

func TestEmpty(t *testing.T) {
	root := parse(t, Bars("Nothing", nil, nil))
	if root.Children[1].Text != "no data" || len(root.all("rect")) != 0 {
		t.Errorf("empty chart: %+v", root)
	}
	parse(t, Bars("zeros", []string{"a"}, []int{0}))
	parse(t, Bars("negative", []string{"a", "b"}, []int{-5}))
}
