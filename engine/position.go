package engine

import (
	"sort"
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// scalarPos returns the line and column (1-based, in runes) in the source of
// the rune at offset off of scalar v's value. It follows YAML's quotes,
// escapes, line folding and block indentation. ok is false when the value
// cannot be traced in the source (no source, or a value changed by ${VAR}).
func (b *Build) scalarPos(v *yaml.Node, off int) (line, col int, ok bool) {
	src := b.Source
	if len(src) == 0 || v == nil || v.Kind != yaml.ScalarNode || v.Line < 1 || v.Column < 1 || off < 0 {
		return 0, 0, false
	}
	p, indent, ok := b.valueStart(v)
	if !ok {
		return 0, 0, false
	}
	block := v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
	double := v.Style&yaml.DoubleQuotedStyle != 0
	single := v.Style&yaml.SingleQuotedStyle != 0
	val := v.Value
	if off > utf8.RuneCountInString(val) {
		off = utf8.RuneCountInString(val)
	}
	newline := func() {
		p++
		if block {
			p = skipIndent(src, p, indent)
			return
		}
		for p < len(src) && (src[p] == ' ' || src[p] == '\t') {
			p++
		}
	}
	for i := 0; ; i++ {
		if i == off || val == "" {
			return b.linePos(p)
		}
		r, rsize := utf8.DecodeRuneInString(val)
		val = val[rsize:]
		// Find r in the source, skipping what only presents it.
		for {
			if p >= len(src) {
				return 0, 0, false
			}
			s, size := utf8.DecodeRune(src[p:])
			if s == r {
				if s == '\n' {
					newline()
				} else {
					p += size
				}
				break
			}
			if s == '\n' && r == ' ' && !(block && v.Style&yaml.LiteralStyle != 0) {
				newline() // a folded line break
				break
			}
			if s == '\\' && double {
				if p+1 < len(src) && src[p+1] == '\n' {
					p++
					newline() // an escaped line break joins the lines
					continue
				}
				p += escapeLen(src[p:])
				break
			}
			if s == ' ' || s == '\t' || s == '\r' || s == '\n' || (s == '\'' && single) {
				if s == '\n' {
					newline()
				} else {
					p += size
				}
				continue
			}
			return 0, 0, false
		}
	}
}

// valueStart returns the offset in the source where scalar v's value
// starts (after its opening quote, or on the line after a block header)
// and, for a block scalar, its indentation.
func (b *Build) valueStart(v *yaml.Node) (p, indent int, ok bool) {
	src := b.Source
	if b.lineStarts == nil {
		b.lineStarts = []int{0}
		for i, c := range src {
			if c == '\n' {
				b.lineStarts = append(b.lineStarts, i+1)
			}
		}
	}
	if v.Line > len(b.lineStarts) {
		return 0, 0, false
	}
	p = b.lineStarts[v.Line-1]
	for n := 1; n < v.Column; n++ {
		if p >= len(src) || src[p] == '\n' {
			return 0, 0, false
		}
		_, size := utf8.DecodeRune(src[p:])
		p += size
	}
	block := v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0
	quoted := v.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0
	switch {
	case block:
		// The value starts on the line after the | or > header.
		for p < len(src) && src[p] != '\n' {
			p++
		}
		p++
		for q := p; q < len(src); {
			n := 0
			for q+n < len(src) && src[q+n] == ' ' {
				n++
			}
			if q+n < len(src) && src[q+n] != '\n' && src[q+n] != '\r' {
				indent = n
				break
			}
			q += n + 1
		}
		p = skipIndent(src, p, indent)
	case quoted:
		p++
	}
	return p, indent, true
}

func skipIndent(src []byte, p, indent int) int {
	for n := 0; n < indent && p < len(src) && src[p] == ' '; n++ {
		p++
	}
	return p
}

// escapeLen is the length of the escape sequence at the start of s (a
// double-quoted scalar's \x41, \u00e9, \n...).
func escapeLen(s []byte) int {
	n := 2
	if len(s) > 1 {
		switch s[1] {
		case 'x':
			n = 4
		case 'u':
			n = 6
		case 'U':
			n = 10
		}
	}
	return min(n, len(s))
}

// linePos turns a byte offset of the source into a line and a rune column.
func (b *Build) linePos(p int) (line, col int, ok bool) {
	p = min(p, len(b.Source))
	i := sort.Search(len(b.lineStarts), func(i int) bool { return b.lineStarts[i] > p }) - 1
	return i + 1, utf8.RuneCount(b.Source[b.lineStarts[i]:p]) + 1, true
}
