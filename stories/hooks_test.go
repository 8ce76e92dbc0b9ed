package stories

// SetParallelMin sets the size from which Load parses a story's nodes in
// parts, for tests; it returns the previous value.
func SetParallelMin(n int) int {
	old := parallelMin
	parallelMin = n
	return old
}

// ParsedInParts tells whether src would be parsed in two parts.
func ParsedInParts(src []byte) bool {
	doc, _ := parseSplit(src, 2, nil)
	return doc != nil
}
