package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/flotilla-sched/flotilla/internal/logging"
	"github.com/flotilla-sched/flotilla/localmesos/executor"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "forward:", err)
		os.Exit(1)
	}
}

func run() error {
	hostPort := flag.Int("host-port", 29401, "port of the host-network container")
	kernelPort := flag.Int("kernel-port", 29402, "host port the kernel forwards to a BRIDGE container's 8080 (veth and nftables DNAT)")
	userlandPort := flag.Int("userland-port", 29403, "host port the user-space forwarder carries to another BRIDGE container's 8080")
	image := flag.String("image", "flotilla/testapp:dev", "image to run")
	cpus := flag.Float64("cpus", 1, "cpus of each task (CPU shares)")
	flag.Parse()
	log, err := logging.New(logging.Options{Level: "warn"})
	if err != nil {
		return err
	}
	// One executor per forwarding mode; kernel refuses to start where the
	// kernel cannot forward, rather than measuring the fallback.
	d, err := executor.NewDocker(executor.DockerConfig{Log: log, Forwarding: executor.ForwardKernel})
	if err != nil {
		return err
	}
	defer func() {
		if err := d.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "forward: close:", err)
		}
	}()
	du, err := executor.NewDocker(executor.DockerConfig{Log: log, Forwarding: executor.ForwardUserland})
	if err != nil {
		return err
	}
	defer func() {
		if err := du.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "forward: close:", err)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := d.Ping(ctx); err != nil {
		return err
	}
	report := func(id string, s executor.Status) {
		if s.State != mesos.TASK_STARTING && s.State != mesos.TASK_RUNNING {
			fmt.Fprintf(os.Stderr, "forward: task %s %s %s\n", id, s.State, s.Message)
		}
	}
	shell := false
	task := func(id string, nw mesos.ContainerInfo_DockerInfo_Network, args []string, maps []mesos.ContainerInfo_DockerInfo_PortMapping, port int) executor.Task {
		return executor.Task{
			Info: mesos.TaskInfo{
				Name: id, TaskID: mesos.TaskID{Value: id}, AgentID: mesos.AgentID{Value: "bench-S0"},
				Resources: []mesos.Resource{
					{Name: "cpus", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: *cpus}},
					{Name: "mem", Type: mesos.SCALAR.Enum(), Scalar: &mesos.Value_Scalar{Value: 128}},
					{Name: "ports", Type: mesos.RANGES.Enum(), Ranges: &mesos.Value_Ranges{Range: []mesos.Value_Range{{Begin: uint64(port), End: uint64(port)}}}},
				},
				Command:   &mesos.CommandInfo{Shell: &shell, Arguments: args},
				Container: &mesos.ContainerInfo{Type: mesos.ContainerInfo_DOCKER.Enum(), Docker: &mesos.ContainerInfo_DockerInfo{Image: *image, Network: nw.Enum(), PortMappings: maps}},
			},
			FrameworkID: "bench", AgentID: "bench-S0", Hostname: "127.0.0.1",
		}
	}
	tcp := "tcp"
	bridge := func(id string, port int) executor.Task {
		return task(id, mesos.ContainerInfo_DockerInfo_BRIDGE, []string{"-port", "8080"},
			[]mesos.ContainerInfo_DockerInfo_PortMapping{{HostPort: uint32(port), ContainerPort: 8080, Protocol: &tcp}}, port)
	}
	launches := []struct {
		d  *executor.Docker
		tk executor.Task
	}{
		{d, task("bench.host", mesos.ContainerInfo_DockerInfo_HOST, []string{"-port", strconv.Itoa(*hostPort)}, nil, *hostPort)},
		{d, bridge("bench.kernel", *kernelPort)},
		{du, bridge("bench.userland", *userlandPort)},
	}
	for _, l := range launches {
		if err := l.d.Launch(ctx, l.tk, report); err != nil {
			return err
		}
	}
	for _, p := range []int{*hostPort, *kernelPort, *userlandPort} {
		if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/", p)); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	return nil
}

func waitHTTP(ctx context.Context, url string) error {
	c := http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s never answered: %w", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
