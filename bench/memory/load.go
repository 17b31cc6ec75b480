// Command load puts N apps of M instances into a Flotilla API, a few
// requests at a time, for bench/memory/run.sh.
//
//	go run ./bench/memory -api http://127.0.0.1:20180 -apps 10000 -instances 10
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:20180", "Flotilla API base URL")
	apps := flag.Int("apps", 10000, "number of apps")
	inst := flag.Int("instances", 10, "instances per app")
	conc := flag.Int("concurrency", 8, "requests in flight")
	flag.Parse()
	ids := make(chan int)
	var failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ids {
				// No ports: the simulated agents' port ranges would bound
				// the task count, and the measure is of apps and tasks.
				body := fmt.Sprintf(`{"id":"/mem/g%d/app%d","cmd":"sleep 1000","instances":%d,"cpus":0.01,"mem":1,"portDefinitions":[]}`, i%100, i, *inst)
				resp, err := http.Post(*api+"/v2/apps", "application/json", bytes.NewBufferString(body))
				if err != nil {
					fmt.Fprintf(os.Stderr, "app %d: %v\n", i, err)
					failed.Add(1)
					continue
				}
				msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated {
					fmt.Fprintf(os.Stderr, "app %d: HTTP %d %s\n", i, resp.StatusCode, msg)
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < *apps; i++ {
		ids <- i
	}
	close(ids)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		fmt.Fprintf(os.Stderr, "%d of %d apps not created\n", n, *apps)
		os.Exit(1)
	}
}
