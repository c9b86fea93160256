// binary-trees for `goheap gcbench`: plain struct nodes joined by
// pointers, one goroutine, Go's collector at its defaults. Prints the
// Benchmarks Game's output; with --stats, one line on stderr with the
// number of collections (MemStats.NumGC) and the longest of their pauses
// that MemStats.PauseNs still holds (the last 256).
//
//	go run ./binarytrees [N] [--stats]
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
)

type node struct {
	left, right *node
}

func tree(depth int) *node {
	if depth == 0 {
		return &node{}
	}
	return &node{tree(depth - 1), tree(depth - 1)}
}

func (n *node) count() uint32 {
	if n.left == nil {
		return 1
	}
	return 1 + n.left.count() + n.right.count()
}

func main() {
	depth, stats := 10, false
	for _, a := range os.Args[1:] {
		if a == "--stats" {
			stats = true
			continue
		}
		d, err := strconv.Atoi(a)
		if err != nil || d < 0 || d > 30 {
			fmt.Fprintln(os.Stderr, "usage: binarytrees [N] [--stats]   (N: the depth, at most 30, default 10)")
			os.Exit(2)
		}
		depth = d
	}

	const minDepth = 4
	maxDepth := depth
	if maxDepth < minDepth+2 {
		maxDepth = minDepth + 2
	}
	stretch := maxDepth + 1
	fmt.Printf("stretch tree of depth %d\t check: %d\n", stretch, tree(stretch).count())
	longLived := tree(maxDepth)
	for d := minDepth; d <= maxDepth; d += 2 {
		iterations := 1 << uint(maxDepth-d+minDepth)
		var sum uint32
		for i := 0; i < iterations; i++ {
			sum += tree(d).count()
		}
		fmt.Printf("%d\t trees of depth %d\t check: %d\n", iterations, d, sum)
	}
	fmt.Printf("long lived tree of depth %d\t check: %d\n", maxDepth, longLived.count())

	if stats {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		var longest uint64
		for _, p := range m.PauseNs {
			if p > longest {
				longest = p
			}
		}
		fmt.Fprintf(os.Stderr, "gc cycles: %d  longest pause: %.3f ms  total pause: %.3f ms\n",
			m.NumGC, float64(longest)/1e6, float64(m.PauseTotalNs)/1e6)
	}
}
