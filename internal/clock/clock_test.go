package clock

import (
	"testing"
	"time"
)

func TestFakeTimerFiresOnlyWhenDue(t *testing.T) {
	t.Parallel()
	c := NewFake(time.Unix(100, 0))
	tm := c.NewTimer(5 * time.Second)
	c.Step(4 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("timer fired before its deadline")
	default:
	}
	c.Step(time.Second)
	select {
	case got := <-tm.C():
		if want := time.Unix(105, 0); !got.Equal(want) {
			t.Fatalf("fired at %v, want %v", got, want)
		}
	default:
		t.Fatal("timer did not fire at its deadline")
	}
	if c.Waiters() != 0 {
		t.Fatalf("fired timer still pending: %d", c.Waiters())
	}
}

func TestFakeTickerRepeatsAndStops(t *testing.T) {
	t.Parallel()
	c := NewFake(time.Unix(0, 0))
	tk := c.NewTicker(time.Second)
	for i := 0; i < 3; i++ {
		c.Step(time.Second)
		select {
		case <-tk.C():
		default:
			t.Fatalf("tick %d missing", i)
		}
	}
	tk.Stop()
	c.Step(time.Second)
	select {
	case <-tk.C():
		t.Fatal("stopped ticker ticked")
	default:
	}
}

func TestFakeTimerResetAndStop(t *testing.T) {
	t.Parallel()
	c := NewFake(time.Unix(0, 0))
	tm := c.NewTimer(time.Second)
	if !tm.Reset(10 * time.Second) {
		t.Fatal("Reset of an active timer reported inactive")
	}
	c.Step(5 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("reset timer fired at its old deadline")
	default:
	}
	if !tm.Stop() {
		t.Fatal("Stop of an active timer reported inactive")
	}
	c.Step(10 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("stopped timer fired")
	default:
	}
}
