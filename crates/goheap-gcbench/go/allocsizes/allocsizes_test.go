// Allocation sizes for `goheap gcbench`: zeroed byte slices of one size
// made in a loop, each replacing the last in a package-level sink (so it
// escapes to the heap and is garbage at the next iteration), left to the
// collector. One sub-benchmark per size:
//
//	go test -bench AllocationSizes -run '^$' -benchtime 0.5s ./allocsizes
package allocsizes

import "testing"

// sink keeps the latest slice reachable, so that the compiler must make it.
var sink []byte

var sizes = []struct {
	name string
	n    int
}{
	{"8B", 8},
	{"32B", 32},
	{"256B", 256},
	{"1KiB", 1 << 10},
	{"10KiB", 10 << 10},
	{"1MiB", 1 << 20},
}

func BenchmarkAllocationSizes(b *testing.B) {
	for _, s := range sizes {
		n := s.n
		b.Run(s.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				sink = make([]byte, n)
			}
		})
	}
}
