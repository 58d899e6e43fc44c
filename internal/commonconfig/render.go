package commonconfig

import (
	"fmt"
	"slices"

	"github.com/firstrun/firstrun/internal/files"
	"github.com/firstrun/firstrun/internal/hostpath"
	"github.com/firstrun/firstrun/internal/inputs"
	"github.com/firstrun/firstrun/internal/proxy"
	"github.com/firstrun/firstrun/internal/state"
)

// ProxyMode is the file's mode while it holds the proxy URL, which may carry
// user:password. Without a proxy its mode is left as it is.
const ProxyMode = 0o600

// Render returns common-config.toml as a merged file and the keys firstrun owns in it
// now (as TABLE.KEY, for the state file); ok is false when there is nothing to manage:
// the log agent is not the CloudWatch agent and no earlier run wrote into the file.
// prev is what earlier runs owned: an older firstrun owned the whole file (it is then
// in prev.Files), so its [proxy] keys are firstrun's too.
func Render(cfg inputs.Config, prev state.State) (f files.File, owned []string, ok bool) {
	wasOwned := len(prev.CommonConfigKeys) > 0 || slices.Contains(prev.Files, hostpath.CloudWatchCommonConfig)
	if cfg.LogAgent != inputs.LogAgentCloudWatch && !wasOwned {
		return files.File{}, nil, false
	}
	var want *Proxy
	if cfg.LogAgent == inputs.LogAgentCloudWatch && cfg.Proxy != nil {
		p := cfg.ProxyString()
		want = &Proxy{HTTP: p, HTTPS: p, NoProxy: proxy.DockerNoProxy(cfg)}
		for _, k := range Keys {
			owned = append(owned, Table+"."+k)
		}
	}
	f = files.File{
		Path: hostpath.CloudWatchCommonConfig,
		Merge: func(existing []byte) ([]byte, error) {
			out, err := Merge(existing, want, wasOwned)
			if err != nil {
				return nil, fmt.Errorf("the CloudWatch agent's common-config.toml: %w (firstrun edits only its [proxy] table and never overwrites the file: fix it, or restore the one the package ships)", err)
			}
			return out, nil
		},
	}
	if want != nil {
		f.Mode = ProxyMode
	}
	return f, owned, true
}
