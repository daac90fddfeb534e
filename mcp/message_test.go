package mcp

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"testing/iotest"
)

const callBody = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"read_file","arguments":{"path":"README.md"}}}`

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, body string
		want       Message
	}{
		{"tools/call", callBody, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(7), Name: "read_file", Target: TargetTool}},
		{"string id", `{"jsonrpc":"2.0","id":"a-1","method":"tools/list"}`, Message{Kind: KindRequest, Method: "tools/list", ID: StringID("a-1")}},
		{"negative id", `{"jsonrpc":"2.0","id":-3,"method":"ping"}`, Message{Kind: KindRequest, Method: "ping", ID: IntID(-3)}},
		{"int64 max id", `{"jsonrpc":"2.0","id":9223372036854775807,"method":"ping"}`, Message{Kind: KindRequest, Method: "ping", ID: IntID(9223372036854775807)}},
		{"members in any order", `{"params":{"arguments":{},"name":"x"},"method":"tools/call","id":1,"jsonrpc":"2.0"}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "x", Target: TargetTool}},
		{"whitespace", " \r\n\t{ \"jsonrpc\" : \"2.0\" , \"method\" : \"notifications/initialized\" } \n", Message{Kind: KindNotification, Method: "notifications/initialized"}},
		{"notification with params", `{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":3,"reason":"x"}}`, Message{Kind: KindNotification, Method: "notifications/cancelled"}},
		{"response result", `{"jsonrpc":"2.0","id":"srv-1","result":{"action":"accept","content":{}}}`, Message{Kind: KindResponse, ID: StringID("srv-1")}},
		{"response error", `{"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"no"}}`, Message{Kind: KindResponse, ID: IntID(4)}},
		{"escaped method", `{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"name":"x"}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "x", Target: TargetTool}},
		{"escaped name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"n\u0061me":"read\u005ffile"}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "read_file", Target: TargetTool}},
		{"escaped jsonrpc", `{"jsonrpc":"2\u002e0","id":1,"method":"ping"}`, Message{Kind: KindRequest, Method: "ping", ID: IntID(1)}},
		{"unknown method is decoded", `{"jsonrpc":"2.0","id":1,"method":"Tools/Call","params":{"name":"x"}}`, Message{Kind: KindRequest, Method: "Tools/Call", ID: IntID(1)}},
		{"resources/read", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a/b"}}`, Message{Kind: KindRequest, Method: "resources/read", ID: IntID(1), Name: "file:///a/b", Target: TargetResource}},
		{"resources/subscribe", `{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"file:///a"}}`, Message{Kind: KindRequest, Method: "resources/subscribe", ID: IntID(1), Name: "file:///a", Target: TargetResource}},
		{"prompts/get", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"review","arguments":{"x":"y"}}}`, Message{Kind: KindRequest, Method: "prompts/get", ID: IntID(1), Name: "review", Target: TargetPrompt}},
		{"notification named tools/call has no target", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}`, Message{Kind: KindNotification, Method: "tools/call"}},
		{"uri ignored for tools/call", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","uri":5}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "x", Target: TargetTool}},
		{"surrogate pair", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"s":"\ud83d\ude00 ok"}}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "x", Target: TargetTool}},
		{"non-ASCII name", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"tööl"}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "tööl", Target: TargetTool}},
		{"large object without duplicates", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{` + members(40, false) + `}}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "x", Target: TargetTool}},
		{"deep but within MaxDepth", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":` + nest(MaxDepth-3) + `}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "x", Target: TargetTool}},
		{"completion of a prompt argument", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"review"},"argument":{"name":"language","value":"py"}}}`, Message{Kind: KindRequest, Method: "completion/complete", ID: IntID(1), Name: "review", Target: TargetPrompt}},
		{"completion of a prompt with a title", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"argument":{"name":"a","value":""},"ref":{"title":"Review","name":"review","type":"ref/prompt"}}}`, Message{Kind: KindRequest, Method: "completion/complete", ID: IntID(1), Name: "review", Target: TargetPrompt}},
		{"completion of a resource template argument", `{"jsonrpc":"2.0","id":"c","method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///repo/{path}"},"argument":{"name":"path","value":"src/"},"context":{"arguments":{}}}}`, Message{Kind: KindRequest, Method: "completion/complete", ID: StringID("c"), Name: "file:///repo/{path}", Target: TargetResource}},
		{"escaped ref members", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"r\u0065f":{"typ\u0065":"ref\/prompt","n\u0061me":"r\u00e9view"}}}`, Message{Kind: KindRequest, Method: "completion/complete", ID: IntID(1), Name: "réview", Target: TargetPrompt}},
		{"completion ref deep but within MaxDepth", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p","x":` + nest(MaxDepth-3) + `}}}`, Message{Kind: KindRequest, Method: "completion/complete", ID: IntID(1), Name: "p", Target: TargetPrompt}},
		{"ref ignored for other methods", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","ref":5}}`, Message{Kind: KindRequest, Method: "tools/call", ID: IntID(1), Name: "x", Target: TargetTool}},
		{"completion notification has no target", `{"jsonrpc":"2.0","method":"completion/complete","params":{"ref":{"type":"ref/prompt"}}}`, Message{Kind: KindNotification, Method: "completion/complete"}},
		{"2026-07-28 server/discover", `{"jsonrpc":"2.0","id":1,"method":"server/discover","params":{"_meta":{}}}`, Message{Kind: KindRequest, Method: "server/discover", ID: IntID(1)}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(c.body)
			orig := bytes.Clone(body)
			got, err := Decode(body)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got.Arguments = Span{} // TestDecodeArguments
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
			if !bytes.Equal(body, orig) {
				t.Error("Decode changed the body")
			}
		})
	}
}

// TestDecodeArguments: Arguments spans params.arguments of a tools/call or
// prompts/get exactly as sent (whitespace inside kept, around it not), so
// the audit digest covers the bytes the upstream reads; other messages
// have none.
func TestDecodeArguments(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, body, want string }{
		{"tools/call", callBody, `{"path":"README.md"}`},
		{"whitespace", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"arguments\" : \n { \"a\" : [1, 2] } \t,\"name\":\"x\"}}", `{ "a" : [1, 2] }`},
		{"escapes kept", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{"\u0061":"\u00e9"}}}`, `{"\u0061":"\u00e9"}`},
		{"not an object", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":"a b"}}`, `"a b"`},
		{"number last", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"x","arguments":-1.5e3}}`, `-1.5e3`},
		{"prompts/get", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"review","arguments":{"x":"y"}}}`, `{"x":"y"}`},
		{"none", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`, ""},
		{"not a call", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"arguments":{"x":1}}}`, ""},
		{"notification", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x","arguments":{}}}`, ""},
		{"completion context", `{"jsonrpc":"2.0","id":"c","method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"p"},"argument":{"name":"a","value":""},"context":{"arguments":{}}}}`, ""},
	} {
		m, err := Decode([]byte(c.body))
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := string(m.Arguments.Of([]byte(c.body))); got != c.want || m.Arguments.IsZero() != (c.want == "") {
			t.Errorf("%s: arguments %q, want %q", c.name, got, c.want)
		}
	}
}

// members returns n object members "k0":0,…; with dup, the last repeats
// the first.
func members(n int, dup bool) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		k := i
		if dup && i == n-1 {
			k = 0
		}
		b.WriteString(`"k` + itoa(k) + `":0`)
	}
	return b.String()
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// nest returns n nested arrays.
func nest(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	const pre = `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":`
	const comp = `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"argument":{"name":"a","value":""},"ref":`
	cases := []struct {
		name, body string
		kind       error
	}{
		{"empty", ``, ErrInvalid},
		{"whitespace only", "  \n", ErrInvalid},
		{"invalid UTF-8", "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\xff\"}}", ErrInvalid},
		{"BOM", "\xEF\xBB\xBF" + callBody, ErrInvalid},
		{"batch", `[` + callBody + `]`, ErrBatch},
		{"batch after space", ` [{"jsonrpc":"2.0","method":"ping","id":1}]`, ErrBatch},
		{"empty batch", `[]`, ErrBatch},
		{"string", `"tools/call"`, ErrInvalid},
		{"null", `null`, ErrInvalid},
		{"trailing object", callBody + `{}`, ErrInvalid},
		{"trailing garbage", callBody + `x`, ErrInvalid},
		{"trailing bracket", callBody + `]`, ErrInvalid},
		{"two messages", callBody + "\n" + callBody, ErrInvalid},
		{"truncated", callBody[:len(callBody)-1], ErrInvalid},
		{"duplicate method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call","params":{"name":"x"}}`, ErrInvalid},
		{"duplicate method by escape", `{"jsonrpc":"2.0","id":1,"method":"tools/list","m\u0065thod":"tools/call"}`, ErrInvalid},
		{"duplicate id", `{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}`, ErrInvalid},
		{"duplicate name", pre + `{"name":"read_file","name":"write_file"}}`, ErrInvalid},
		{"duplicate deep", pre + `{"name":"x","arguments":{"a":{"b":1,"b":2}}}}`, ErrInvalid},
		{"duplicate in large object", pre + `{"name":"x","arguments":{` + members(40, true) + `}}}`, ErrInvalid},
		{"duplicate in array element", pre + `{"name":"x","arguments":[{"a":1},{"a":1,"a":1}]}}`, ErrInvalid},
		{"case variant Method", `{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call"}`, ErrInvalid},
		{"case variant ID", `{"jsonrpc":"2.0","ID":1,"method":"ping"}`, ErrInvalid},
		{"case variant Params", `{"jsonrpc":"2.0","id":1,"method":"ping","Params":{}}`, ErrInvalid},
		{"fold variant jſonrpc", `{"jſonrpc":"2.0","id":1,"method":"ping"}`, ErrInvalid},
		{"unknown member", `{"jsonrpc":"2.0","id":1,"method":"ping","extra":1}`, ErrInvalid},
		{"case variant Name beside name", pre + `{"name":"read_file","Name":"write_file"}}`, ErrInvalid},
		{"case variant NAME alone", pre + `{"NAME":"write_file"}}`, ErrInvalid},
		{"case variant Uri", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///a","Uri":"file:///b"}}`, ErrInvalid},
		{"no jsonrpc", `{"id":1,"method":"ping"}`, ErrInvalid},
		{"jsonrpc 1.0", `{"jsonrpc":"1.0","id":1,"method":"ping"}`, ErrInvalid},
		{"jsonrpc number", `{"jsonrpc":2.0,"id":1,"method":"ping"}`, ErrInvalid},
		{"id null", `{"jsonrpc":"2.0","id":null,"method":"ping"}`, ErrInvalid},
		{"id fraction", `{"jsonrpc":"2.0","id":1.5,"method":"ping"}`, ErrInvalid},
		{"id 1.0", `{"jsonrpc":"2.0","id":1.0,"method":"ping"}`, ErrInvalid},
		{"id exponent", `{"jsonrpc":"2.0","id":1e3,"method":"ping"}`, ErrInvalid},
		{"id leading zero", `{"jsonrpc":"2.0","id":01,"method":"ping"}`, ErrInvalid},
		{"id bool", `{"jsonrpc":"2.0","id":true,"method":"ping"}`, ErrInvalid},
		{"id object", `{"jsonrpc":"2.0","id":{},"method":"ping"}`, ErrInvalid},
		{"id over int64", `{"jsonrpc":"2.0","id":9223372036854775808,"method":"ping"}`, ErrInvalid},
		{"huge id", `{"jsonrpc":"2.0","id":` + strings.Repeat("9", 400) + `,"method":"ping"}`, ErrInvalid},
		{"long string id", `{"jsonrpc":"2.0","id":"` + strings.Repeat("a", MaxIDLen+1) + `","method":"ping"}`, ErrInvalid},
		{"method number", `{"jsonrpc":"2.0","id":1,"method":5}`, ErrInvalid},
		{"method too long", `{"jsonrpc":"2.0","id":1,"method":"` + strings.Repeat("a", MaxMethodLen+1) + `"}`, ErrInvalid},
		{"params array", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["x"]}`, ErrInvalid},
		{"params null", `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":null}`, ErrInvalid},
		{"params string", `{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}`, ErrInvalid},
		{"result not object", `{"jsonrpc":"2.0","id":1,"result":[]}`, ErrInvalid},
		{"error not object", `{"jsonrpc":"2.0","id":1,"error":"x"}`, ErrInvalid},
		{"result and error", `{"jsonrpc":"2.0","id":1,"result":{},"error":{}}`, ErrInvalid},
		{"response without result", `{"jsonrpc":"2.0","id":1}`, ErrInvalid},
		{"response with params", `{"jsonrpc":"2.0","id":1,"result":{},"params":{}}`, ErrInvalid},
		{"method with result", `{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}`, ErrInvalid},
		{"result without id", `{"jsonrpc":"2.0","result":{}}`, ErrInvalid},
		{"nothing", `{"jsonrpc":"2.0"}`, ErrInvalid},
		{"tools/call without params", `{"jsonrpc":"2.0","id":1,"method":"tools/call"}`, ErrInvalid},
		{"tools/call without name", pre + `{"arguments":{}}}`, ErrInvalid},
		{"name number", pre + `{"name":1}}`, ErrInvalid},
		{"name null", pre + `{"name":null}}`, ErrInvalid},
		{"name empty", pre + `{"name":""}}`, ErrInvalid},
		{"name NUL", pre + `{"name":"read_file\u0000"}}`, ErrInvalid},
		{"name newline", pre + `{"name":"read_file\n"}}`, ErrInvalid},
		{"name C1 control", pre + `{"name":"a\u0085"}}`, ErrInvalid},
		{"name too long", pre + `{"name":"` + strings.Repeat("a", MaxNameLen+1) + `"}}`, ErrInvalid},
		{"resources/read without uri", `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"name":"x"}}`, ErrInvalid},
		{"prompts/get without name", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{}}`, ErrInvalid},
		{"completion without params", `{"jsonrpc":"2.0","id":1,"method":"completion/complete"}`, ErrInvalid},
		{"completion without ref", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"argument":{"name":"a","value":"b"}}}`, ErrInvalid},
		{"completion ref null", comp + `null}}`, ErrInvalid},
		{"completion ref string", comp + `"ref/prompt"}}`, ErrInvalid},
		{"completion ref array", comp + `[{"type":"ref/prompt","name":"p"}]}}`, ErrInvalid},
		{"completion ref without type", comp + `{"name":"p"}}}`, ErrInvalid},
		{"completion ref type number", comp + `{"type":1,"name":"p"}}}`, ErrInvalid},
		{"completion ref of a tool", comp + `{"type":"ref/tool","name":"write_file"}}}`, ErrInvalid},
		{"completion ref type case", comp + `{"type":"Ref/Prompt","name":"p"}}}`, ErrInvalid},
		{"completion ref type with space", comp + `{"type":"ref/prompt ","name":"p"}}}`, ErrInvalid},
		{"completion prompt without name", comp + `{"type":"ref/prompt"}}}`, ErrInvalid},
		{"completion prompt name empty", comp + `{"type":"ref/prompt","name":""}}}`, ErrInvalid},
		{"completion prompt name number", comp + `{"type":"ref/prompt","name":7}}}`, ErrInvalid},
		{"completion prompt name control", comp + `{"type":"ref/prompt","name":"p\u0000"}}}`, ErrInvalid},
		{"completion prompt with a uri", comp + `{"type":"ref/prompt","name":"p","uri":"file:///etc/passwd"}}}`, ErrInvalid},
		{"completion resource without uri", comp + `{"type":"ref/resource","name":"p"}}}`, ErrInvalid},
		{"completion resource with a name", comp + `{"type":"ref/resource","uri":"file:///a","name":"p"}}}`, ErrInvalid},
		{"completion resource uri too long", comp + `{"type":"ref/resource","uri":"file:///` + strings.Repeat("a", MaxNameLen) + `"}}}`, ErrInvalid},
		{"completion case variant Ref", comp + `{"type":"ref/prompt","name":"p"},"Ref":{"type":"ref/prompt","name":"q"}}}`, ErrInvalid},
		{"completion case variant REF alone", `{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"REF":{"type":"ref/prompt","name":"p"}}}`, ErrInvalid},
		{"completion case variant Type", comp + `{"type":"ref/prompt","Type":"ref/resource","name":"p"}}}`, ErrInvalid},
		{"completion case variant Name", comp + `{"type":"ref/prompt","name":"p","Name":"q"}}}`, ErrInvalid},
		{"completion case variant URI", comp + `{"type":"ref/resource","uri":"file:///a","URI":"file:///b"}}}`, ErrInvalid},
		{"completion duplicate name", comp + `{"type":"ref/prompt","name":"p","name":"q"}}}`, ErrInvalid},
		{"completion duplicate ref", comp + `{"type":"ref/prompt","name":"p"},"ref":{"type":"ref/prompt","name":"q"}}}`, ErrInvalid},
		{"completion ref too deep", comp + `{"type":"ref/prompt","name":"p","x":` + nest(MaxDepth-2) + `}}}`, ErrInvalid},
		{"lone high surrogate", pre + `{"name":"x\ud800"}}`, ErrInvalid},
		{"lone low surrogate", pre + `{"name":"x","arguments":{"s":"\udc00"}}}`, ErrInvalid},
		{"high surrogate then letter", pre + `{"name":"x","arguments":{"s":"\ud800\u0041"}}}`, ErrInvalid},
		{"surrogate in key", pre + `{"name":"x","arguments":{"\ud800":1}}}`, ErrInvalid},
		{"too deep", pre + `{"name":"x","arguments":` + nest(MaxDepth) + `}}`, ErrInvalid},
		{"raw control character", pre + "{\"name\":\"a\tb\"}}", ErrInvalid},
		{"bad escape", pre + `{"name":"a\x"}}`, ErrInvalid},
		{"trailing comma", pre + `{"name":"x",}}`, ErrInvalid},
		{"single quotes", `{'jsonrpc':'2.0','id':1,'method':'ping'}`, ErrInvalid},
		{"comment", `{"jsonrpc":"2.0","id":1,"method":"ping"/*x*/}`, ErrInvalid},
		{"NaN", pre + `{"name":"x","arguments":{"n":NaN}}}`, ErrInvalid},
		{"case variant Arguments beside arguments", pre + `{"name":"x","arguments":{},"Arguments":{"path":"/etc/passwd"}}}`, ErrInvalid},
		{"case variant ARGUMENTS alone", pre + `{"name":"x","ARGUMENTS":{"path":"/etc/passwd"}}}`, ErrInvalid},
		{"case variant of prompt arguments", `{"jsonrpc":"2.0","id":1,"method":"prompts/get","params":{"name":"p","argumentS":{}}}`, ErrInvalid},
		{"duplicate arguments", pre + `{"name":"x","arguments":{},"arguments":{"path":"/etc/passwd"}}}`, ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			m, err := Decode([]byte(c.body))
			if err == nil {
				t.Fatalf("accepted as %+v", m)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error %v, want kind %v", err, c.kind)
			}
			var e *Error
			if !errors.As(err, &e) || e.Public == "" {
				t.Fatalf("error %T without public text", err)
			}
			if HTTPStatus(err) != 400 {
				t.Errorf("status %d, want 400", HTTPStatus(err))
			}
			if m != (Message{}) {
				t.Errorf("a refused message came back non-zero: %+v", m)
			}
		})
	}
}

// The public text never echoes the input.
func TestDecodeErrorsDoNotEchoInput(t *testing.T) {
	t.Parallel()
	_, err := Decode([]byte(`{"jsonrpc":"2.0","id":1,"method":"ping","<script>":1}`))
	var e *Error
	if !errors.As(err, &e) || strings.Contains(e.Public, "script") {
		t.Fatalf("public %q", e.Public)
	}
}

func TestReadBody(t *testing.T) {
	t.Parallel()
	b, err := ReadBody(strings.NewReader(callBody), int64(len(callBody)))
	if err != nil || string(b) != callBody {
		t.Fatalf("at the limit: %q, %v", b, err)
	}
	_, err = ReadBody(strings.NewReader(callBody), int64(len(callBody)-1))
	if !errors.Is(err, ErrTooLarge) || HTTPStatus(err) != 413 {
		t.Fatalf("over the limit: %v", err)
	}
	_, err = ReadBody(strings.NewReader(strings.Repeat(" ", DefaultMaxBody+1)), 0)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("default limit: %v", err)
	}
	_, err = ReadBody(iotest.ErrReader(errors.New("boom")), 0)
	if err == nil || errors.Is(err, ErrTooLarge) {
		t.Fatalf("read error: %v", err)
	}
}

func TestIDString(t *testing.T) {
	t.Parallel()
	for id, want := range map[ID]string{IntID(-5): "-5", StringID(`a"b`): `"a\"b"`, {}: ""} {
		if got := id.String(); got != want {
			t.Errorf("%#v: %q, want %q", id, got, want)
		}
	}
	// The JSON form is JSON (RFC 8259 §7), whatever the id holds, and reads
	// back as the same id; strconv.Quote's \x, \a and \U escapes are not.
	for _, str := range []string{"a\x00b", "\a\b\f\n\r\t\v", "\x7f", "é-ü 😀", "\u0085\u2028\u2029", "<a&b>", `\"`, "x\xffy"} {
		got := StringID(str).String()
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("StringID(%q).String() = %s: %v", str, got, err)
			continue
		}
		if want := strings.ToValidUTF8(str, "\uFFFD"); back != want {
			t.Errorf("StringID(%q).String() = %s reads back as %q", str, got, back)
		}
	}
	if got := StringID("<é>").String(); got != `"<é>"` {
		t.Errorf("HTML or non-ASCII escaped: %s", got)
	}
	if StringID("1") == IntID(1) {
		t.Error(`"1" equals 1`)
	}
	if !(ID{}).IsZero() || IntID(0).IsZero() {
		t.Error("IsZero")
	}
}

func TestKindString(t *testing.T) {
	t.Parallel()
	for k, want := range map[Kind]string{KindRequest: "request", KindNotification: "notification", KindResponse: "response", 0: "invalid"} {
		if k.String() != want {
			t.Errorf("%d: %q", k, k.String())
		}
	}
}

func TestKnownMethod(t *testing.T) {
	t.Parallel()
	cases := []struct {
		method  string
		request bool
		want    bool
	}{
		{"tools/call", true, true},
		{"Tools/Call", true, false},
		{"tools/call ", true, false},
		{"notifications/initialized", true, false},
		{"notifications/initialized", false, true},
		{"tools/call", false, false},
		{"tasks/get", true, false},
		{"sampling/createMessage", true, false},
		{"subscriptions/listen", true, true},
	}
	for _, c := range cases {
		if got := KnownMethod(c.method, c.request); got != c.want {
			t.Errorf("KnownMethod(%q, %v) = %v", c.method, c.request, got)
		}
	}
}

// foldEqual's shortcuts never change bytes.EqualFold's answer.
func TestFoldEqual(t *testing.T) {
	t.Parallel()
	names := []string{"name", "uri", "ref", "type", "jsonrpc", "id", "method", "params", "result", "error", "tools", "k", "s"}
	keys := []string{"", "n", "name", "Name", "NAME", "nAmE", "nam", "names", "uri", "URI", "Uri", "ref", "REF", "rEf",
		"type", "TYPE", "jſonrpc", "JSONRPC", "id", "ID", "Id", "iD", "method", "METHOD", "paramſ", "PARAMS", "reſult",
		"error", "ERROR", "toolſ", "TOOLS", "\u212a", "\u017f", "K", "S", "k", "s", "x", "\u212a\u212a", "nameé", "é"}
	for _, n := range names {
		for _, k := range keys {
			if got, want := foldEqual([]byte(k), n), bytes.EqualFold([]byte(k), []byte(n)); got != want {
				t.Errorf("foldEqual(%q, %q) = %v, bytes.EqualFold %v", k, n, got, want)
			}
		}
	}
}
