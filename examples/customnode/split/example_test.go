package split_test

import (
	"context"
	"fmt"

	"github.com/storyflow/storyflow/engine"
	"github.com/storyflow/storyflow/examples/customnode/split"
	"github.com/storyflow/storyflow/nodes"
	"github.com/storyflow/storyflow/stories"
)

const abStory = `
id: pricing-ab
start: pick
nodes:
  pick:
    type: split
    attribute: variant
    branches:
      - {name: A, weight: 70, next: offer_a}
      - {name: B, weight: 30, next: offer_b}
  offer_a:
    type: message
    responses: [{type: text, message: "Pro is free for 14 days."}]
  offer_b:
    type: message
    responses: [{type: text, message: "Pro is 20% off this month."}]
`

// Example builds a registry with the built-in node types and split, loads a
// story that uses it and runs a few chats through it.
func Example() {
	reg := nodes.NewRegistry(nodes.Options{})
	if err := split.Register(reg); err != nil {
		panic(err)
	}
	story, _, err := stories.Load("pricing.yaml", []byte(abStory), stories.Options{Registry: reg})
	if err != nil {
		panic(err)
	}
	var runner engine.Runner
	for _, user := range []string{"ann", "bob", "cem", "dee", "eva"} {
		chat := engine.NewChat(story, "chat-"+user, user, "", nil, nil)
		turn, err := runner.Start(context.Background(), story, chat)
		if err != nil {
			panic(err)
		}
		for _, r := range turn.Output {
			fmt.Printf("%s (%s): %s\n", user, chat.Attributes["variant"], r.Message)
		}
	}
	// Output:
	// ann (A): Pro is free for 14 days.
	// bob (A): Pro is free for 14 days.
	// cem (A): Pro is free for 14 days.
	// dee (B): Pro is 20% off this month.
	// eva (A): Pro is free for 14 days.
}

// Example_graph shows the split's edges as the graph draws them.
func Example_graph() {
	reg := nodes.NewRegistry(nodes.Options{})
	if err := split.Register(reg); err != nil {
		panic(err)
	}
	story, _, err := stories.Load("pricing.yaml", []byte(abStory), stories.Options{Registry: reg})
	if err != nil {
		panic(err)
	}
	g, err := stories.Graph(story, "mermaid")
	if err != nil {
		panic(err)
	}
	fmt.Print(g)
	// Output:
	// flowchart TD
	//   n0["pick<br/>(split)"]
	//   n1["offer_a<br/>(message)"]
	//   n2["offer_b<br/>(message)"]
	//   n0 -->|"A 70%"| n1
	//   n0 -->|"B 30%"| n2
	//   classDef start stroke-width:3px
	//   class n0 start
}
