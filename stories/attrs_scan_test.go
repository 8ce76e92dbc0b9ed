package stories

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The regular expressions the scanners stand for.
var (
	attrReadRe = regexp.MustCompile(`(?:^|[^A-Za-z0-9_.$])attributes\s*(?:\??\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*["']([^"']+)["']\s*\])`)
	templateRe = regexp.MustCompile(`\{\{(.*?)\}\}`)
)

func readsByRegexp(s string) []string {
	var out []string
	for _, m := range attrReadRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1]+m[2])
	}
	return out
}

func readsByScanner(s string) []string {
	var out []string
	attributeReads(s, func(name string) { out = append(out, name) })
	return out
}

func partsByRegexp(s string) []string {
	var out []string
	for _, m := range templateRe.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// TestAttributeScanners checks templateExprs and attributeReads against the
// regular expressions they replace, on chosen and on random strings made of
// the pieces that matter.
func TestAttributeScanners(t *testing.T) {
	cases := []string{
		"", "attributes", "attributes.x", " attributes.x", "xattributes.x", "userAttributes.x", "$attributes.x",
		".attributes.x", "attributes.attributes.x", "attributes.x attributes.y", "attributes.x+attributes.y",
		"attributes[\"x\"]attributes.y", "attributes[\"x\"] attributes.y", "attributes?.x", "attributes ?. x",
		"attributes?x", "attributes. 1x", "attributes._1", "attributes[ 'a b' ]", "attributes[\"\"]", "attributes['x\"]",
		"attributes[\"x\n\"]", "attributes\n.\nx", "attributes\v.x", "é attributes.é", "éattributes.x", "\xffattributes.x",
		"{{ attributes.x }}", "{{{ a }}}", "{{ a \n }} {{ b }}", "{{}}", "{{ a }", "}} {{ a }}", "{{ a }}{{ b }}",
		"{{ a + attributes }}{{.x}}", "{{ attributes.x ", "{{ a\n{{ b }}",
	}
	pieces := []string{"attributes", "attributes", "user", "Attributes", ".", "?", "?.", "[", "]", "\"", "'", " ", "\n", "\t", "\v",
		"x", "_", "1", "$", "é", "\xff", "{{", "}}", "{", "}", "+", "a b"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		var b strings.Builder
		for range 1 + r.IntN(12) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		if got, want := readsByScanner(s), readsByRegexp(s); !slices.Equal(got, want) {
			t.Fatalf("attributeReads(%q) = %q, the regexp finds %q", s, got, want)
		}
		if got, want := templateExprs(s, nil), partsByRegexp(s); !slices.Equal(got, want) {
			t.Fatalf("templateExprs(%q) = %q, the regexp finds %q", s, got, want)
		}
	}
}

// TestValidNodeID checks validNodeID against nodeIDRe.
func TestValidNodeID(t *testing.T) {
	cases := []string{"", "a", "A-b_9", strings.Repeat("x", 64), strings.Repeat("x", 65), "a b", "a\n", "é",
		"123e4567-e89b-12d3-a456-426614174000", "a.b", "a:b", "-", "_"}
	pieces := []string{"a", "Z", "0", "-", "_", ".", " ", "\n", "é", "\xff", "$"}
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		var b strings.Builder
		for range r.IntN(70) {
			b.WriteString(pieces[r.IntN(len(pieces))])
		}
		cases = append(cases, b.String())
	}
	for _, id := range cases {
		if got, want := validNodeID(id), nodeIDRe.MatchString(id); got != want {
			t.Fatalf("validNodeID(%q) = %v, nodeIDRe says %v", id, got, want)
		}
	}
}
