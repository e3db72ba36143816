// Command k8s-multicall is one binary containing the Kubernetes components
// that the local cluster runs. Linking each component separately costs
// minutes of CPU and gigabytes of memory per binary on a small machine.
// Linking them together pays that cost once, as hyperkube and k3s do.
//
// The component is chosen by the name the binary was started under (a symlink
// such as kube-apiserver -> k8s-multicall) or, failing that, by the first
// argument: `k8s-multicall kubelet --config ...`.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	_ "time/tzdata" // CronJob time zones need the database inside the binary.

	"github.com/spf13/cobra"
	_ "k8s.io/client-go/plugin/pkg/client/auth"
	"k8s.io/component-base/cli"
	"k8s.io/component-base/logs"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	kubectlcmd "k8s.io/kubectl/pkg/cmd"
	kubectlutil "k8s.io/kubectl/pkg/cmd/util"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	proxy "k8s.io/kubernetes/cmd/kube-proxy/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

// components maps each component name to a function building its command.
var components = map[string]func() *cobra.Command{
	"kube-apiserver":          apiserver.NewAPIServerCommand,
	"kube-controller-manager": controllermanager.NewControllerManagerCommand,
	"kube-scheduler": func() *cobra.Command {
		return scheduler.NewSchedulerCommand()
	},
	"kube-proxy": proxy.NewProxyCommand,
	"kubelet": func() *cobra.Command {
		return kubelet.NewKubeletCommand(context.Background())
	},
}

func main() {
	name := filepath.Base(os.Args[0])
	if name != "kubectl" && components[name] == nil {
		if len(os.Args) < 2 {
			usage()
		}
		// Drop the dispatcher's own name so the component gets the argument
		// list it would get as a standalone binary.
		name = os.Args[1]
		os.Args = append([]string{name}, os.Args[2:]...)
	}

	if name == "kubectl" {
		os.Exit(runKubectl())
	}
	build := components[name]
	if build == nil {
		usage()
	}
	os.Exit(cli.Run(build()))
}

// runKubectl repeats what kubectl's own main does: the log level is read
// from the arguments before the command is built, because building it
// already logs (plugins, .kuberc).
func runKubectl() int {
	logs.GlogSetter(kubectlcmd.GetLogVerbosity(os.Args)) //nolint:errcheck
	command := kubectlcmd.NewDefaultKubectlCommand()
	if err := cli.RunNoErrOutput(command); err != nil {
		kubectlutil.CheckErr(err)
		return 1
	}
	return 0
}

func usage() {
	names := []string{"kubectl"}
	for name := range components {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: k8s-multicall COMPONENT [flags]\n"+
		"or start it through a symlink named after the component.\n"+
		"COMPONENT is one of: %s\n", strings.Join(names, ", "))
	os.Exit(2)
}
