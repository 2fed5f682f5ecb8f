// etcd, built from the etcd server module the pinned Kubernetes release
// itself requires (go.mod), so the store and the API server are the pair
// that release was tested with.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
