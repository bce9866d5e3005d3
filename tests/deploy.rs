//! `deploy/`: the systemd unit passes `systemd-analyze verify`, and the container's health
//! check, run as written, answers from a real `closeloop serve`. `docker build` runs where a
//! Docker daemon answers (CI has none, and no registry to pull the base images from).

use std::process::Command;

use crate::http::Server;
use crate::support::{root, Cli};

#[test]
fn the_systemd_unit_verifies_with_nothing_to_warn_about() {
    let unit = std::fs::read_to_string(root().join("deploy/closeloop.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/closeloop serve"), "one process runs closeloop");
    assert!(unit.contains("KillSignal=SIGTERM") && unit.contains("Restart=on-failure"));
    // Verified against the binary the tests built (the unit names its installed path).
    let cli = Cli::new("deploy-unit", "2026-11-30T10:00:00+08:00");
    let copy = cli.path("closeloop.service");
    std::fs::write(&copy, unit.replace("/usr/local/bin/closeloop", env!("CARGO_BIN_EXE_closeloop"))).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap_or_else(|e| panic!("systemd-analyze is needed (apt-get install systemd): {e}"));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify: {said}");
}

#[test]
fn the_container_health_check_as_written_asks_a_real_server_and_tells_a_dead_one() {
    let dockerfile = std::fs::read_to_string(root().join("deploy/Dockerfile")).unwrap();
    assert!(dockerfile.matches("\nFROM ").count() >= 2, "multi-stage: the runtime image has no compiler");
    assert!(dockerfile.contains("\nUSER closeloop"), "not root");
    assert!(dockerfile.contains(r#"CMD ["closeloop", "serve""#), "one process runs closeloop");
    // The HEALTHCHECK's own command, pointed at a server on a free port.
    let line = dockerfile.lines().find(|l| l.contains("CMD [\"bash\"")).unwrap();
    let script = line.split("\"-c\", \"").nth(1).unwrap().trim_end_matches("\"]").replace("\\\\", "\\");
    let cli = Cli::system_clock("deploy-health");
    cli.ok(&["install", "lead-followup"]);
    let server = Server::start(&cli, "1", "4");
    let port = server.addr.rsplit(':').next().unwrap().to_string();
    let check = |script: &str| Command::new("bash").arg("-c").arg(script).status().unwrap().success();
    assert!(check(&script.replace("8080", &port)), "healthy: {script}");
    drop(server);
    assert!(!check(&script.replace("8080", &port)), "a stopped server is unhealthy");
    // `docker build` where a daemon answers.
    let daemon = Command::new("docker").arg("info").output().is_ok_and(|o| o.status.success());
    if daemon {
        let built = Command::new("docker")
            .args(["build", "-f", "deploy/Dockerfile", "-t", "closeloop:test", "."])
            .current_dir(root())
            .status()
            .unwrap();
        assert!(built.success(), "docker build");
    } else {
        eprintln!("docker build not run: no Docker daemon answers here (and no registry for the base images)");
    }
}
