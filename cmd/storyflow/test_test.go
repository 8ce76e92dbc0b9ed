package main_test

import (
	"strings"
	"testing"
)

// TestExampleStoryTests runs the tests of every example story (make test
// runs them through this).
func TestExampleStoryTests(t *testing.T) {
	r := run(t, "", "test", "--coverage", examples)
	if r.code != 0 {
		t.Fatalf("storyflow test %s: exit %d\n%s%s", examples, r.code, r.stdout, r.stderr)
	}
	for _, story := range []string{"support", "orders", "leads"} {
		if !strings.Contains(r.stdout, "ok   "+examples+story+".test.yaml: ") {
			t.Errorf("no passing tests for %s:\n%s", story, r.stdout)
		}
		if !strings.Contains(r.stdout, "coverage of "+examples+story+".yaml: ") {
			t.Errorf("no coverage of %s:\n%s", story, r.stdout)
		}
	}
}

func TestStoryTestCommand(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a story finds its tests", []string{"test", "../../storytest/testdata/shop.yaml"}, 0,
			"ok   ../../storytest/testdata/shop.test.yaml: 2 tests passed\n"},
		{"failures exit 1", []string{"test", "../../storytest/testdata/fail.test.yaml"}, 1,
			"FAIL ../../storytest/testdata/fail.test.yaml: 8 of 8 tests failed\n"},
		{"no tests", []string{"test", "testdata/bad.yaml"}, 1, ""},
		{"no files", []string{"test"}, 2, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, "", tt.args...)
			if r.code != tt.code || !strings.HasSuffix(r.stdout, tt.want) {
				t.Errorf("exit %d, want %d; stdout ends:\n%s\nwant it to end with:\n%s", r.code, tt.code, r.stdout, tt.want)
			}
		})
	}
}
