package spool_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkEnqueue measures Enqueue as the SMTP server sees it before its
// 250: two files written and fsynced, the directory fsynced, renamed into
// incoming/, and incoming/ fsynced.
func BenchmarkEnqueue(b *testing.B) {
	for _, size := range []int{4 << 10, 64 << 10} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			h := newHarness(b, nil)
			defer h.close()
			msg := []byte(testMsg + strings.Repeat(strings.Repeat("x", 76)+"\r\n", size/78))
			s := saved("a@example.org", "b@example.net")
			ctx := context.Background()
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := h.sp.Enqueue(ctx, s, msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEnqueueParallel measures Enqueue from many SMTP sessions at once.
func BenchmarkEnqueueParallel(b *testing.B) {
	h := newHarness(b, nil)
	defer h.close()
	msg := []byte(testMsg + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 50))
	s := saved("a@example.org", "b@example.net")
	b.SetBytes(int64(len(msg)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.sp.Enqueue(context.Background(), s, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
