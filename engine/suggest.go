package engine

import (
	"strings"

	"github.com/agnivade/levenshtein"
)

// Suggest returns the candidate closest to s by edit distance, when it is
// close enough to be a likely typo ("did you mean …"), or "".
func Suggest(s string, candidates []string) string {
	best, bestD := "", 0
	ls := strings.ToLower(s)
	for _, c := range candidates {
		if c == s {
			continue
		}
		d := levenshtein.ComputeDistance(ls, strings.ToLower(c))
		if best == "" || d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	// A third of the longer name may differ (rounded up), at least one character.
	if best == "" || bestD > max(1, (max(len(s), len(best))+2)/3) {
		return ""
	}
	return best
}

// didYouMean is " (did you mean x?)" for the candidate closest to s, or "".
func didYouMean(s string, candidates []string) string {
	if m := Suggest(s, candidates); m != "" {
		return " (did you mean " + m + "?)"
	}
	return ""
}

// DidYouMean is " (did you mean x?)" for the candidate closest to s, or "":
// to end a message about an unknown name.
func DidYouMean(s string, candidates []string) string { return didYouMean(s, candidates) }
