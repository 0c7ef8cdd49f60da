//! The report: `docs/benchmarks.md` from a run's typed figures, and the machine it ran on.

use std::process::Command;

use crate::results::{Machine, Report};

/// `docs/benchmarks.md` for a run's figures.
pub(crate) fn markdown(r: &Report) -> String {
    let m = &r.machine;
    let mut s = format!(
        "# Benchmarks\n\nOne run of `cargo run --release -p config-backup-bench` on {} ({} cores, {} GB), {}, {}; seed {}, median of {} rounds; {} s in all. \
         Raw figures: [benchmarks.json](benchmarks.json).\n\n{}\n## Backup: the engine against the git CLI and the read+hash floor\n\n\
         Engine: in-process; gRPC: the same through the server (its own process). No-change runs, the engine's and the server's alike, are \
         measured warm, as a daily run meets them: after one unmeasured run, made once the site's last change is older than the stat \
         cache's racy window (2 s), at least 5 back to back, with the stat cache warm (files untouched since they were hashed are not \
         read; a server's first run after its start, and a run within 2 s of a change, read more); \"full re-hash\" is the same run reading and hashing every file \
         (what the periodic full re-hash does, and `CONFIG_BACKUP_FULL_REHASH_HOURS=0`); its rounds alternate with the floor's, \
         at least 5 of each, so the two share the machine's load. The engine's first backup includes its push \
         (objects sent whole: no delta search, see the README); the housekeeping that may follow a run (`git gc --auto`, \
         `git repack --geometric=2`) runs on a thread of its own once the run is recorded and is not counted (the benchmark waits \
         for it before measuring anything else; the server's peak RSS is the server process's, the git commands being its children). The git CLI's push of its first commit is shown on its own. \
         Each first backup (engine, gRPC, git CLI) starts after a `sync`, so the kernel's writeback of the generated site does not land on it.\n\n\
         | size | files | MB | floor (read+SHA-256) | engine first | engine no-change | engine no-change, full re-hash | engine 1 % | gRPC first | gRPC no-change | gRPC 1 % | git CLI first | git CLI push of first | git CLI no-change | git CLI 1 % | peak RSS, first backup (MB) | peak RSS, no-change and 1 % (MB) |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
        m.cpu,
        m.cores,
        m.memory_gb,
        m.git,
        r.date,
        r.seed,
        r.rounds,
        r.elapsed_s,
        goals_section(r)
    );
    for (name, v) in &r.sizes {
        s.push_str(&format!(
            "| {name} | {} | {:.1} | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {:.0} | {:.0} |\n",
            v.files, v.mb, v.floor_ms, v.engine_first_ms, v.engine_nochange_ms, v.engine_nochange_full_rehash_ms,
            v.engine_change_ms, v.grpc_first_ms, v.grpc_nochange_ms, v.grpc_change_ms, v.git_first_ms, v.git_first_push_ms,
            v.git_nochange_ms, v.git_change_ms, v.server_peak_rss_mb_first_backup, v.server_peak_rss_mb_steady
        ));
    }
    s.push_str(
        "\n| size | first ÷ git | first ÷ (git + push) | no-change ÷ git | no-change ÷ floor | full re-hash ÷ floor | 1 % ÷ git |\n|---|---|---|---|---|---|---|\n",
    );
    for (name, v) in &r.sizes {
        s.push_str(&format!(
            "| {name} | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× |\n",
            v.ratio_first_vs_git,
            v.ratio_first_vs_git_with_push,
            v.ratio_nochange_vs_git,
            v.ratio_nochange_vs_floor,
            v.ratio_nochange_full_rehash_vs_floor,
            v.ratio_change_vs_git
        ));
    }
    s.push_str(
        "\n### Where a no-change run's time goes\n\nThe engine's own account (`RunTimings`), median of the no-change runs above: \
         *start* records the run; *sync* opens the working copy and fetches the remote's branch; *domains* scans the globs, \
         stats every file against the stat cache, and writes each domain's commit (its manifest and trees); *push* pushes and \
         reads the remote branch back; *audit* writes the audit trail (a no-change commit is one row); *finish* records the \
         outcome and applies retention.\n\n\
         | size | start | sync | domains | push | audit | finish | total | audit share |\n|---|---|---|---|---|---|---|---|---|\n",
    );
    for (name, v) in &r.sizes {
        let p = &v.nochange_phases;
        {
            s.push_str(&format!(
                "| {name} | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {} ms | {:.1} % |\n",
                p.start_ms,
                p.sync_ms,
                p.domains_ms,
                p.push_ms,
                p.audit_ms,
                p.finish_ms,
                p.total_ms,
                p.audit_share * 100.0
            ));
        }
    }
    s.push_str(
        "\n## Sealing's cost\n\nThe same site in two copies, each with its own repository: one engine seals secrets (the built-in rules; \
         the synthetic RADIUS files hold one `secret` per client stanza), the other has no secret rules. Runs interleaved, engine in-process, median.\n\n\
         | size | rounds | no-change, sealing | no-change, no rules | ratio | 1 %, sealing | 1 %, no rules | ratio |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (name, v) in &r.sizes {
        if let Some(c) = &v.sealing {
            s.push_str(&format!(
                "| {name} | {} | {} ms | {} ms | {:.2}× | {} ms | {} ms | {:.2}× |\n",
                c.rounds,
                c.sealed_nochange_ms,
                c.plain_nochange_ms,
                c.nochange_ratio,
                c.sealed_change_ms,
                c.plain_change_ms,
                c.change_ratio
            ));
        } else {
            s.push_str(&format!("| {name} | — | — | — | — | — | — | — |\n"));
        }
    }
    if let Some(h) = &r.history {
        s.push_str(&format!(
            "\n## History and Diff over {} days of daily history (M, 1 % daily change)\n\nBuilding the history took {} s. Backup repository: {:.1} MB; \
             audit database (SQLite): {:.1} MB, {:.2}× the repository, {:.2} bytes per file per day (the audit trail stores a row per \
             commit and per changed file; the table-per-file-per-day schema before it measured 2,265 MB, about 775 bytes per file per day, here).\n\n\
             History pages asked for again with nothing written in between are the pages the server keeps (`engine/history.rs`, at most 1 s): \
             *read* is a call made after the page kept expired (median of 3), the others are 200 calls back to back.\n\n\
             | query | gRPC read | gRPC p50 | gRPC p99 | REST p50 | REST p99 |\n|---|---|---|---|---|---|\n",
            h.days,
            h.build_s,
            h.repo_mb,
            h.audit_db_mb,
            h.audit_db_mb / h.repo_mb.max(1e-9),
            h.bytes_per_file_per_day
        ));
        for q in &h.queries {
            s.push_str(&format!(
                "| {} | {} ms | {} ms | {} ms | {} ms | {} ms |\n",
                q.query, q.grpc_read_ms, q.grpc_p50_ms, q.grpc_p99_ms, q.rest_p50_ms, q.rest_p99_ms
            ));
        }
        let g = &h.git_log;
        let d = &h.diff;
        s.push_str(&format!(
            "\nThe same with the git CLI on the same repository (process start included): `git log -n 100 -- <domain>` p50 {} / p99 {} ms; `-- <file>` p50 {} / p99 {} ms; page 20 (`--skip 1900`) p50 {} / p99 {} ms.\n\n\
             Diff, first ↔ last commit of one domain, 20 calls: the first gRPC call (which makes the diff; later calls get the answer the server keeps, `engine/diffs.rs`) {} ms; gRPC p50 {} / p99 {} ms; REST p50 {} / p99 {} ms; `git diff --stat` p50 {} / p99 {} ms.\n\n\
             Rollback of one domain (kea) at M, request to success, no reload command: {} ms ({}).\n\n## API throughput (16 concurrent gRPC clients, 10 s)\n\n| RPC | requests/s | p50 | p99 | errors |\n|---|---|---|---|---|\n",
            g.domain_p50_ms, g.domain_p99_ms, g.file_p50_ms, g.file_p99_ms, g.page20_p50_ms, g.page20_p99_ms,
            d.grpc_first_ms, d.grpc_p50_ms, d.grpc_p99_ms, d.rest_p50_ms, d.rest_p99_ms, d.git_p50_ms, d.git_p99_ms,
            h.rollback.ms, h.rollback.state
        ));
        for t in &h.throughput {
            s.push_str(&format!(
                "| {} | {} | {} ms | {} ms | {} |\n",
                t.rpc, t.requests_per_s, t.p50_ms, t.p99_ms, t.errors
            ));
        }
    }

    if let Some(l) = h_rest_load(r) {
        s.push_str(&format!(
            "\n## REST under load\n\n`wrk -t2 -c{} -d{}s --latency` on REST History domain=dns, page 1 ({} bytes of JSON an answer; wrk on the same cores), \
             while a client called Backup back to back through gRPC ({} runs, {} failed): {:.0} req/s, p50 {} ms, p99 {} ms, {} errors \
             (non-2xx answers and socket errors).\n",
            l.connections, l.seconds, l.answer_bytes, l.backups_run, l.backups_failed, l.requests_per_s, l.p50_ms, l.p99_ms, l.errors
        ));
    }

    let ab = "\n## Hand-run A/B measurements\n\nOne change against the commit before it, with the profile each was found with: \
              [benchmarks-ab.md](benchmarks-ab.md).\n";
    if let Some(fl) = &r.fleet {
        s.push_str(&format!(
            "\n## A fleet on one PostgreSQL\n\n{} sites of M (4,000 files each, their own files, repository and engine; `CONFIG_BACKUP_SITE` \
             site-00…), one PostgreSQL database, {} days of 1 % daily change each, backed up in turn day after day (the days are \
             simulated: every commit lands in the current month's partition). Building it took {} s.\n\n\
             | database | commits | stored file rows | rows of the `config_git_backups` view | bytes per file per day |\n|---|---|---|---|---|\n\
             | {:.1} MB | {} | {} | {} | {:.2} |\n\n\
             Through one site's server (site-00, its own process), {} calls each:\n\n\
             | query | p50 | p99 | site-00 alone on its database: p50 | p99 | p50 fleet / alone |\n|---|---|---|---|---|---|\n\
             | History domain=dns, page 1 (own site) | {} ms | {} ms | {} ms | {} ms | {:.2} |\n\
             | History file filter (own site) | {} ms | {} ms | {} ms | {} ms | {:.2} |\n\
             | History domain=dns, page 1, `site=` another site | {} ms | {} ms | | | |\n\
             | ListSites ({} sites) | {} ms | {} ms | | | |\n\n\
             \"Alone\" is the same site-00 (same files, same days) built on a PostgreSQL database of its own \
             ({} s): what sharing the database with the other sites costs one site's History. Both servers run side by \
             side and are called in turn, call for call (which one first alternates), so that whatever else the machine \
             does falls on both alike. The store plans each statement once per connection (generic plans, \
             `store/backend.rs`): a plan that PostgreSQL makes anew for every call's values costs more than the query here \
             and, for one site, depends on what the other sites hold.\n",
            fl.sites, fl.days, fl.build_s, fl.db_mb, fl.commits, fl.file_rows, fl.view_rows,
            fl.bytes_per_file_per_day,
            fl.calls,
            fl.history_domain_p50_ms, fl.history_domain_p99_ms,
            fl.alone.history_domain_p50_ms, fl.alone.history_domain_p99_ms,
            fl.history_domain_p50_ms / fl.alone.history_domain_p50_ms,
            fl.history_file_p50_ms, fl.history_file_p99_ms,
            fl.alone.history_file_p50_ms, fl.alone.history_file_p99_ms,
            fl.history_file_p50_ms / fl.alone.history_file_p50_ms,
            fl.history_other_site_p50_ms, fl.history_other_site_p99_ms, fl.sites, fl.list_sites_p50_ms, fl.list_sites_p99_ms,
            fl.alone.build_s
        ));
    }
    s.push_str(ab);
    s
}

/// Issue 25's goals, each beside what this run measured.
fn goals_section(r: &Report) -> String {
    format!(
        "## Goals\n\nIssue 25's goals, each checked against this run's figures below (the binary prints the same; \
         `goals` in the JSON).\n\n{}",
        crate::goals::markdown(&r.goals)
    )
}

fn h_rest_load(r: &Report) -> Option<&crate::results::RestLoad> {
    r.history.as_ref()?.rest_load.as_ref()
}

/// Where the benchmark runs.
pub(crate) fn machine() -> Machine {
    let cpu = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpu
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        .unwrap_or_default();
    let mem = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gb = mem
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map(|kb| (kb / 1048576.0).round())
        .unwrap_or(0.0);
    let git = Command::new("git")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    Machine {
        cpu: model,
        cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        memory_gb: mem_gb,
        git,
    }
}
