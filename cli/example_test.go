package cli_test

import (
	"github.com/storyflow/storyflow/cli"
	"github.com/storyflow/storyflow/examples/customnode/split"
)

// A storyflow binary with one more node type is a main.go of one line;
// examples/customnode is that binary, tested.
func ExampleMain() {
	main := func() { cli.Main(split.Register) }
	_ = main // func main() { cli.Main(split.Register) }
}
