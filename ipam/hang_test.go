package ipam

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestHangHunt(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for i := 0; i < 3000; i++ {
		data := make([]byte, 1+rng.IntN(700))
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		start := time.Now()
		done := make(chan struct{})
		go func() {
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Logf("slow input case %d: %x", data[0]%byte(len(modelCases)), data)
				panic("hang")
			}
		}()
		checkAgainstModel(t, modelCases[int(data[0])%len(modelCases)], data[1:])
		close(done)
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Logf("case %d took %v", int(data[0])%len(modelCases), d)
		}
	}
}
