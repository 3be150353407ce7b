package sentineltest

import (
	"strconv"
	"strings"
)

// The simulator reads what it charges for from the evalscript's setup() itself,
// the way the service would: a small lexer for the JavaScript the evalscripts use
// and a parser of the object literal setup() returns. No JavaScript is run, and
// nothing else of the script matters. An expression the parser cannot evaluate
// (a variable, a call, arithmetic) makes just that value unknown.

// setupInfo is what the simulator needs from setup()'s return value.
type setupInfo struct {
	// ok is false when no setup() returning an object literal was found.
	ok bool
	// inputBands is the number of distinct input bands, dataMask not counted;
	// -1 when the input list could not be read.
	inputBands int
	// outputs are the declared outputs, in order.
	outputs []outputSpec
	// mosaicking is SIMPLE (the default), ORBIT or TILE.
	mosaicking string
}

// outputSpec is one declared output.
type outputSpec struct {
	id         string // "default" when unnamed
	bands      int    // 0 when not given or unreadable
	sampleType string // upper case, "" when not given (AUTO)
}

// float32 reports whether any output has sampleType FLOAT32.
func (s setupInfo) float32() bool {
	for _, o := range s.outputs {
		if o.sampleType == "FLOAT32" {
			return true
		}
	}
	return false
}

// chargedBands is the input band count the PU rules use: the parsed count, or 3
// when the input list could not be read.
func (s setupInfo) chargedBands() int {
	if s.inputBands < 0 {
		return 3
	}
	return s.inputBands
}

// parseSetup reads the evalscript's setup(). An evalscript it cannot read gives
// ok=false, 3 bands, no outputs and SIMPLE mosaicking.
func parseSetup(src string) setupInfo {
	info := setupInfo{inputBands: -1, mosaicking: "SIMPLE"}
	toks := lex(src)
	at := findSetupReturn(toks)
	if at < 0 {
		return info
	}
	p := &parser{toks: toks, i: at}
	v := p.value()
	if v.kind != jsObject {
		return info
	}
	info.ok = true
	if in, ok := v.obj["input"]; ok {
		info.inputBands = countInputBands(in)
	}
	switch out := v.obj["output"]; out.kind {
	case jsObject:
		info.outputs = []outputSpec{readOutput(out)}
	case jsArray:
		for _, o := range out.arr {
			if o.kind == jsObject {
				info.outputs = append(info.outputs, readOutput(o))
			}
		}
	}
	if m := v.obj["mosaicking"].name(); m != "" {
		switch m = strings.ToUpper(m); m {
		case "SIMPLE", "ORBIT", "TILE":
			info.mosaicking = m
		}
	}
	return info
}

// countInputBands counts the distinct bands of setup()'s input: a list of band
// names, or a list of objects with a bands list (and, for data fusion, a
// datasource). dataMask is not counted. -1 if any part is unreadable.
func countInputBands(in jsValue) int {
	seen := map[string]bool{}
	addList := func(source string, list jsValue) bool {
		if list.kind != jsArray {
			return false
		}
		for _, b := range list.arr {
			if b.kind != jsString {
				return false
			}
			if b.str != "dataMask" {
				seen[source+"\x00"+b.str] = true
			}
		}
		return true
	}
	addObject := func(o jsValue) bool {
		return addList(o.obj["datasource"].str, o.obj["bands"])
	}
	switch in.kind {
	case jsObject:
		if !addObject(in) {
			return -1
		}
	case jsArray:
		for _, e := range in.arr {
			switch e.kind {
			case jsString:
				if e.str != "dataMask" {
					seen["\x00"+e.str] = true
				}
			case jsObject:
				if !addObject(e) {
					return -1
				}
			default:
				return -1
			}
		}
	default:
		return -1
	}
	return len(seen)
}

func readOutput(o jsValue) outputSpec {
	spec := outputSpec{id: "default"}
	if id := o.obj["id"]; id.kind == jsString && id.str != "" {
		spec.id = id.str
	}
	if b := o.obj["bands"]; b.kind == jsNumber && b.num >= 1 && b.num == float64(int(b.num)) {
		spec.bands = int(b.num)
	}
	spec.sampleType = strings.ToUpper(o.obj["sampleType"].name())
	return spec
}

// findSetupReturn returns the index of the "{" that starts the object literal
// setup() returns, -1 if there is none. It understands
// `function setup() { ... return {...} }`, `setup = function () {...}`,
// `const setup = () => ({...})` and `const setup = () => { return {...} }`.
func findSetupReturn(toks []token) int {
	for i, t := range toks {
		if t.kind != tokIdent || t.text != "setup" {
			continue
		}
		j := i + 1
		if j < len(toks) && toks[j].is("=") {
			j++
			if j < len(toks) && toks[j].kind == tokIdent && toks[j].text == "function" {
				j++
			}
		} else if i == 0 || toks[i-1].kind != tokIdent || toks[i-1].text != "function" {
			continue
		}
		// The parameter list, then either a body or an arrow.
		if j >= len(toks) || !toks[j].is("(") {
			continue
		}
		j = skipBalanced(toks, j)
		if j < len(toks) && toks[j].is("=>") {
			j++
			if j+1 < len(toks) && toks[j].is("(") && toks[j+1].is("{") {
				return j + 1
			}
		}
		if j >= len(toks) || !toks[j].is("{") {
			continue
		}
		// The first `return {` directly in the body (not in a nested function).
		depth := 0
		for k := j; k < len(toks); k++ {
			switch {
			case toks[k].is("{"), toks[k].is("("), toks[k].is("["):
				depth++
			case toks[k].is("}"), toks[k].is(")"), toks[k].is("]"):
				depth--
				if depth == 0 {
					k = len(toks)
				}
			case depth == 1 && toks[k].kind == tokIdent && toks[k].text == "return":
				n := k + 1
				for n < len(toks) && toks[n].is("(") {
					n++
				}
				if n < len(toks) && toks[n].is("{") {
					return n
				}
			}
		}
	}
	return -1
}

// skipBalanced returns the index after the bracket that closes toks[open].
func skipBalanced(toks []token, open int) int {
	depth := 0
	for k := open; k < len(toks); k++ {
		switch {
		case toks[k].is("{"), toks[k].is("("), toks[k].is("["):
			depth++
		case toks[k].is("}"), toks[k].is(")"), toks[k].is("]"):
			depth--
			if depth == 0 {
				return k + 1
			}
		}
	}
	return len(toks)
}

// Lexer.

type tokKind int

const (
	tokPunct tokKind = iota
	tokIdent
	tokString
	tokNumber
)

type token struct {
	kind tokKind
	text string // a string token's text is its unquoted value
}

func (t token) is(punct string) bool { return t.kind == tokPunct && t.text == punct }

// lex splits JavaScript source into tokens, dropping comments. Regular-expression
// literals are not recognised (evalscripts' setup() has none).
func lex(src string) []token {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case strings.HasPrefix(src[i:], "//"):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return toks
			}
			i += 2 + end + 2
		case c == '"' || c == '\'' || c == '`':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\\' && j+1 < len(src) {
					j++
				}
				b.WriteByte(src[j])
			}
			toks = append(toks, token{tokString, b.String()})
			i = j + 1
		case isDigit(c) || c == '.' && i+1 < len(src) && isDigit(src[i+1]):
			j := i
			for j < len(src) && (isDigit(src[j]) || src[j] == '.' || src[j] == 'e' || src[j] == 'E' ||
				(src[j] == '-' || src[j] == '+') && (src[j-1] == 'e' || src[j-1] == 'E')) {
				j++
			}
			toks = append(toks, token{tokNumber, src[i:j]})
			i = j
		case isIdentStart(c):
			j := i
			for j < len(src) && (isIdentStart(src[j]) || isDigit(src[j])) {
				j++
			}
			toks = append(toks, token{tokIdent, src[i:j]})
			i = j
		case strings.HasPrefix(src[i:], "=>"), strings.HasPrefix(src[i:], "..."):
			n := 2
			if c == '.' {
				n = 3
			}
			toks = append(toks, token{tokPunct, src[i : i+n]})
			i += n
		default:
			toks = append(toks, token{tokPunct, string(c)})
			i++
		}
	}
	return toks
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isIdentStart(c byte) bool {
	return c == '_' || c == '$' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Object-literal parser.

type jsKind int

const (
	jsUnknown jsKind = iota // absent, or an expression the parser does not evaluate
	jsObject
	jsArray
	jsString
	jsNumber
	jsName // an identifier or a dotted path, e.g. SampleType.FLOAT32
)

type jsValue struct {
	kind jsKind
	str  string // jsString's value, jsName's path
	num  float64
	obj  map[string]jsValue
	arr  []jsValue
}

// name is a string value or the last part of a dotted name
// ("SampleType.FLOAT32" -> "FLOAT32"), "" otherwise.
func (v jsValue) name() string {
	switch v.kind {
	case jsString:
		return v.str
	case jsName:
		return v.str[strings.LastIndexByte(v.str, '.')+1:]
	}
	return ""
}

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{tokPunct, ""}
}

// atEnd reports whether the next token ends a value.
func (p *parser) atEnd() bool {
	t := p.peek()
	return t.kind == tokPunct && (t.text == "," || t.text == "}" || t.text == "]" || t.text == ")" || t.text == ";" || t.text == "")
}

// value parses one value; anything it does not evaluate is skipped up to the
// next "," or closing bracket of the enclosing literal and returned as jsUnknown.
func (p *parser) value() jsValue {
	var v jsValue
	t := p.peek()
	switch {
	case t.is("{"):
		v = p.object()
	case t.is("["):
		v = p.array()
	case t.kind == tokString:
		p.i++
		v = jsValue{kind: jsString, str: t.text}
	case t.kind == tokNumber, t.is("-") && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tokNumber:
		neg := t.is("-")
		if neg {
			p.i++
		}
		n, err := strconv.ParseFloat(p.peek().text, 64)
		p.i++
		if err == nil {
			if neg {
				n = -n
			}
			v = jsValue{kind: jsNumber, num: n}
		}
	case t.kind == tokIdent:
		path := t.text
		p.i++
		for p.peek().is(".") && p.i+1 < len(p.toks) && p.toks[p.i+1].kind == tokIdent {
			path += "." + p.toks[p.i+1].text
			p.i += 2
		}
		v = jsValue{kind: jsName, str: path}
	}
	if !p.atEnd() { // an expression: skip it
		p.skipExpression()
		return jsValue{}
	}
	return v
}

// skipExpression advances to the next "," or closing bracket at this depth.
func (p *parser) skipExpression() {
	depth := 0
	for ; p.i < len(p.toks); p.i++ {
		t := p.toks[p.i]
		switch {
		case t.is("{"), t.is("["), t.is("("):
			depth++
		case t.is("}"), t.is("]"), t.is(")"):
			if depth == 0 {
				return
			}
			depth--
		case depth == 0 && (t.is(",") || t.is(";")):
			return
		}
	}
}

func (p *parser) object() jsValue {
	v := jsValue{kind: jsObject, obj: map[string]jsValue{}}
	p.i++ // {
	for p.i < len(p.toks) {
		t := p.peek()
		switch {
		case t.is("}"):
			p.i++
			return v
		case t.is(","):
			p.i++
			continue
		case t.kind == tokIdent || t.kind == tokString || t.kind == tokNumber:
			p.i++
			if p.peek().is(":") {
				p.i++
				v.obj[t.text] = p.value()
				continue
			}
			// Shorthand `{ input, output }` or a method: value unknown.
			v.obj[t.text] = jsValue{}
			p.skipExpression()
		default: // spread, computed key, stray token: skip the member
			start := p.i
			p.skipExpression()
			if p.i == start {
				p.i++
			}
		}
	}
	return v
}

func (p *parser) array() jsValue {
	v := jsValue{kind: jsArray}
	p.i++ // [
	for p.i < len(p.toks) {
		t := p.peek()
		switch {
		case t.is("]"):
			p.i++
			return v
		case t.is(","):
			p.i++
		default:
			start := p.i
			v.arr = append(v.arr, p.value())
			if p.i == start { // a stray closer: avoid looping
				p.i++
			}
		}
	}
	return v
}
