package cli_test

import (
	"os"

	"github.com/storyflow/storyflow/cli"
	"github.com/storyflow/storyflow/examples/customnode/split"
)

// A storyflow binary with one more node type is a main.go of one line:
//
//	func main() { cli.Main(split.Register) }
//
// examples/customnode is that binary, tested.
func ExampleMain() {
	cli.Main(split.Register) // runs os.Args and exits
}

// Run is Main on given arguments and streams: here validate lints a story
// that uses the split node type, which the stock binary does not know.
func ExampleRun() {
	code := cli.Run([]string{"validate", "../examples/customnode/story.yaml"}, os.Stdin, os.Stdout, os.Stderr, split.Register)
	if code != 0 {
		panic(code)
	}
	// Output:
	// ../examples/customnode/story.yaml: ok
}
