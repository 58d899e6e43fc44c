package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/firstrun/firstrun/test/e2e/sandbox"
)

// bootForm is one row of the boot table: a user data form booted as an instance.
type bootForm struct {
	sandbox.BootForm
	// Slow marks the forms whose user data works for a minute: they are booted two at
	// a time (firstrun's beside the stock one), the minute being idle.
	Slow bool
}

// userDataWork is what the slow forms' user data spends on its own work.
const userDataWork = 60 * time.Second

// bootForms are the five forms of the boot tests, and the two with a minute of user
// data work that touches nothing of ECS: firstrun's image with the cluster in the
// instance's tags, and the stock AMI whose user data writes ecs.config first.
func bootForms() []bootForm {
	var out []bootForm
	for _, f := range sandbox.BootForms() {
		out = append(out, bootForm{BootForm: f})
	}
	work := fmt.Sprintf("sleep %d # the user data's own work, nothing of ECS\n", int(userDataWork.Seconds()))
	slowFirstrun := sandbox.BootForms()[0]
	slowFirstrun.Name = "none + 60 s script"
	slowFirstrun.Instance.UserData = "#!/bin/bash\n" + work
	slowStock := sandbox.BootForms()[4]
	slowStock.Name = "stock + 60 s script"
	slowStock.Instance.UserData = slowStock.Instance.UserData + work
	// A proxy: docker, up since boot, is restarted once firstrun has written its proxy
	// drop-in (nothing in the sandbox goes through the proxy; docker only keeps it).
	proxy := sandbox.BootForms()[2]
	proxy.Name = "write_files + proxy"
	proxy.Instance.UserData = strings.Replace(proxy.Instance.UserData, "      ECS_CLUSTER=", "      PROXY_URL=http://proxy.internal:3128\n      ECS_CLUSTER=", 1)
	out = append(out, bootForm{BootForm: proxy})
	return append(out, bootForm{BootForm: slowFirstrun, Slow: true}, bootForm{BootForm: slowStock, Slow: true})
}

// bootUnits are the units whose start and end each boot records.
var bootUnits = []string{"cloud-init-local.service", "cloud-final.service", "docker.service", "firstrun-early.service", "firstrun.service", "ecs.service"}

// slowBoot is how much longer than its user data's own work a boot may take to join
// before its journal is kept for a look (in the out directory's boots/).
const slowBoot = 20 * time.Second

// bootRun is one boot: power-on (systemd-nspawn started) to the agent's registration
// line in the journal, both on the host's clock, and each unit's start and end after
// power-on (zero when it did not happen).
type bootRun struct {
	Form         string
	ToRegistered time.Duration
	Units        map[string][2]time.Duration
}

// bootResults are the boot table's figures.
type bootResults struct {
	Runs []bootRun
	// Chains is systemd-analyze critical-chain of one boot of each form, for ecs.service
	// and (on firstrun's image) firstrun.service.
	Chains map[string]string
}

// boots boots each form whose name matches only (all when "") n times, round after
// round (so that the machine's drift touches every form alike), and the slow forms'
// pairs side by side.
func boots(ctx context.Context, binDir, outDir string, n int, only string) (bootResults, error) {
	res := bootResults{Chains: map[string]string{}}
	match, err := regexp.Compile(only)
	if err != nil {
		return res, fmt.Errorf("-forms: %w", err)
	}
	var fast, slow []bootForm
	for _, f := range bootForms() {
		if !match.MatchString(f.Name) {
			continue
		}
		if f.Slow {
			slow = append(slow, f)
		} else {
			fast = append(fast, f)
		}
	}
	for round := range n {
		for _, f := range fast {
			r, chain, err := bootOnce(ctx, binDir, outDir, f, round, round == 0)
			if err != nil {
				return res, err
			}
			res.Runs = append(res.Runs, r)
			if chain != "" {
				res.Chains[f.Name] = chain
			}
			fmt.Fprintf(os.Stderr, "   round %d %-22s boot → registered %s\n", round+1, f.Name, dur(r.ToRegistered))
		}
	}
	for round := range n {
		var wg sync.WaitGroup
		runs := make([]bootRun, len(slow))
		errs := make([]error, len(slow))
		for i, f := range slow {
			wg.Add(1)
			go func() {
				defer wg.Done()
				runs[i], _, errs[i] = bootOnce(ctx, binDir, outDir, f, round, false)
			}()
		}
		wg.Wait()
		for i, f := range slow {
			if errs[i] != nil {
				return res, errs[i]
			}
			res.Runs = append(res.Runs, runs[i])
			fmt.Fprintf(os.Stderr, "   round %d %-22s boot → registered %s\n", round+1, f.Name, dur(runs[i].ToRegistered))
		}
	}
	return res, nil
}

// bootOnce boots f, waits for the registration, then for the boot's end, and reads the
// units' timestamps and, when chain, the critical chains. A boot slower than slowBoot
// beyond its user data's work leaves its journal in outDir/boots.
func bootOnce(ctx context.Context, binDir, outDir string, f bootForm, round int, chain bool) (r bootRun, chains string, err error) {
	r.Form = f.Name
	in := f.Instance
	s, err := sandbox.Start(ctx, sandbox.Config{CacheDir: sandbox.DefaultCacheDir(), BinDir: binDir, Instance: &in})
	if err != nil {
		return r, "", err
	}
	defer func() {
		if stopErr := s.Stop(); err == nil {
			err = stopErr
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute+userDataWork)
	defer cancel()
	at, err := s.WaitRegistered(wctx, sandbox.BootCluster)
	if err != nil {
		return r, "", fmt.Errorf("boot %s: %w\nconsole:\n%s", f.Name, err, lastLines(s.Console(), 40))
	}
	r.ToRegistered = at.Sub(s.Started())
	if limit := slowBoot + map[bool]time.Duration{true: userDataWork}[f.Slow]; r.ToRegistered > limit {
		keepJournal(ctx, s, outDir, fmt.Sprintf("%s-%d", f.Name, round+1))
	}
	state, err := s.WaitSystem(wctx)
	if err != nil {
		return r, "", fmt.Errorf("boot %s: %w", f.Name, err)
	}
	if state != "running" {
		return r, "", fmt.Errorf("boot %s ended %s:\n%s", f.Name, state, lastLines(s.Console(), 40))
	}
	ts, err := s.Timestamps(wctx, bootUnits...)
	if err != nil {
		return r, "", err
	}
	r.Units = map[string][2]time.Duration{}
	for u, t := range ts {
		var d [2]time.Duration
		for i := range t {
			if !t[i].IsZero() {
				d[i] = t[i].Sub(s.Started())
			}
		}
		r.Units[u] = d
	}
	if chain {
		units := []string{"ecs.service"}
		if f.Firstrun {
			units = append(units, "firstrun.service")
		}
		out, err := s.Run(wctx, append([]string{"systemd-analyze", "critical-chain", "--no-pager"}, units...)...)
		if err != nil {
			return r, "", fmt.Errorf("boot %s: %w", f.Name, err)
		}
		chains = string(out)
	}
	return r, chains, nil
}

// keepJournal writes the boot's journal to outDir/boots/NAME.journal, best effort.
func keepJournal(ctx context.Context, s *sandbox.Sandbox, outDir, name string) {
	out, err := s.Run(ctx, "journalctl", "-b", "--no-pager", "-o", "short-precise")
	dir := filepath.Join(outDir, "boots")
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		path := filepath.Join(dir, strings.NewReplacer(" ", "", "+", "-").Replace(name)+".journal")
		err = os.WriteFile(path, out, 0o644)
		fmt.Fprintf(os.Stderr, "   a slow boot: its journal is in %s\n", path)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "   a slow boot, its journal not kept: %v\n", err)
	}
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// byForm returns each form's runs, in the forms' order.
func (b *bootResults) byForm() ([]string, map[string][]bootRun) {
	m := map[string][]bootRun{}
	var names []string
	for _, r := range b.Runs {
		if _, ok := m[r.Form]; !ok {
			names = append(names, r.Form)
		}
		m[r.Form] = append(m[r.Form], r)
	}
	return names, m
}

// joins returns the boot → registered times of runs.
func joins(runs []bootRun) []time.Duration {
	return each(runs, func(r bootRun) time.Duration { return r.ToRegistered })
}

// stockOf names the stock row a firstrun row is compared with.
func stockOf(form string) string {
	if strings.Contains(form, "60 s") {
		return "stock + 60 s script"
	}
	return "stock"
}

// report renders the boot table, the units' median timeline, and the critical chains.
func (b *bootResults) report() string {
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	names, m := b.byForm()
	p("## Boot → registered, as an instance boots\n\n")
	p("Each form booted as an EC2 instance boots (test/e2e/sandbox, Instance: cloud-init with a NoCloud seed, IMDS and CloudFormation at their addresses), from systemd-nspawn's start to the fake agent's registration line in the journal, on the same clock; the agent registers 1 s after it starts, in every form. The forms with a %s user data script are booted two at a time, firstrun's beside the stock one.\n\n", userDataWork)
	p("| form | boots | p50 | p95 | min | max | p50 ÷ stock's |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range names {
		s := summarize(joins(m[n]))
		rat := "—"
		if st, ok := m[stockOf(n)]; ok && !strings.HasPrefix(n, "stock") {
			rat = fmt.Sprintf("%.2f", ratio(s.P50, median(joins(st))))
		}
		p("| %s | %d | %s | %s | %s | %s | %s |\n", n, s.N, dur(s.P50), dur(s.P95), dur(s.Min), dur(s.Max), rat)
	}
	p("\nMedian time after power-on of each step (start → end of the unit's start job; — when the unit did not run; firstrun's unit is firstrun-early.service where it joined, else firstrun.service):\n\n")
	p("| form | cloud-init-local starts | cloud-final ends | docker starts → active | firstrun's unit starts → ends | ecs.service starts | registered |\n|---|---:|---:|---:|---:|---:|---:|\n")
	for _, n := range names {
		runs := m[n]
		at := func(unit string, i int) string {
			var ds []time.Duration
			for _, r := range runs {
				u := unit
				if u == "firstrun" { // the one of firstrun's units that ran (became active)
					u = "firstrun.service"
					if r.Units["firstrun-early.service"][1] > 0 {
						u = "firstrun-early.service"
					}
				}
				if d := r.Units[u][i]; d > 0 {
					ds = append(ds, d)
				}
			}
			if len(ds) == 0 {
				return "—"
			}
			return dur(median(ds))
		}
		p("| %s | %s | %s | %s → %s | %s → %s | %s | %s |\n", n, at("cloud-init-local.service", 0), at("cloud-final.service", 1),
			at("docker.service", 0), at("docker.service", 1), at("firstrun", 0), at("firstrun", 1), at("ecs.service", 0), dur(median(joins(runs))))
	}
	for _, n := range names {
		if c, ok := b.Chains[n]; ok {
			p("\nCritical chain, form %s (systemd-analyze critical-chain, first boot):\n\n```\n%s```\n", n, c)
		}
	}
	p("\n")
	return w.String()
}

// bootTarget is one line of the targets' table.
type bootTarget struct {
	name, got string
	met       bool
}

// targets are firstrun's image against the stock AMI: no later at p50 with each form,
// and, with a minute of user data, ahead by most of that minute.
func (b *bootResults) targets() []bootTarget {
	names, m := b.byForm()
	var out []bootTarget
	for _, n := range names {
		st, ok := m[stockOf(n)]
		if strings.HasPrefix(n, "stock") || !ok {
			continue
		}
		f, s := median(joins(m[n])), median(joins(st))
		out = append(out, bootTarget{fmt.Sprintf("boot → registered p50, %s ÷ %s ≤ %.1f", n, stockOf(n), targetBootRatio),
			fmt.Sprintf("%.2f (%s ÷ %s)", ratio(f, s), dur(f), dur(s)), ratio(f, s) <= targetBootRatio})
		if strings.Contains(n, "60 s") {
			ahead := s - f
			out = append(out, bootTarget{fmt.Sprintf("%s ahead of %s by about %s (≥ %s)", n, stockOf(n), userDataWork, userDataWork*9/10),
				dur(ahead), ahead >= userDataWork*9/10})
		}
	}
	return out
}
