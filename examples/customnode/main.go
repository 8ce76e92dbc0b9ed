// Command customnode is storyflow with one more node type, split: the whole
// CLI (serve, validate, chat, test, graph, schema) knowing it. Build your
// own storyflow the same way:
//
//	go build -o storyflow-split ./examples/customnode
//	./storyflow-split validate examples/customnode/story.yaml
package main

import (
	"github.com/storyflow/storyflow/cli"
	"github.com/storyflow/storyflow/examples/customnode/split"
)

func main() { cli.Main(split.Register) }
