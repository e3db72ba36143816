// Command etcd-server builds etcd from go.etcd.io/etcd/server/v3.
//
// That module resolves its sibling modules (api, client, pkg) through
// replace directives pointing into the etcd repository, so `go install`
// rejects it. This module requires the siblings at the same tag instead.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
