//! Where a process runs, from `/proc/PID/cgroup`: its systemd unit and, for
//! containers, the runtime and container id (Kubernetes: the pod uid too).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

pub use crate::model::{Container, Context};

/// Parses the text of `/proc/PID/cgroup`.
pub fn parse(text: &str) -> Option<Context> {
    // Prefer the v2 line ("0::/path"); on v1 hosts take a hierarchy that
    // carries the full path (name=systemd, pids, memory).
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if id == "0" && ctrl.is_empty() {
            v2 = Some(path);
        } else if v1.is_none() || ctrl == "name=systemd" {
            v1 = Some(path);
        }
    }
    let path = match (v2, v1) {
        (Some(p), _) if p != "/" => p,
        (_, Some(p)) => p,
        (Some(p), None) => p,
        (None, None) => return None,
    };
    Some(Context { cgroup: path.to_string(), unit: unit(path), container: container(path) })
}

/// The innermost systemd unit in a path (`.service`, `.scope`), skipping
/// container scopes, which name the runtime, not a unit users manage.
fn unit(path: &str) -> Option<String> {
    path.split('/')
        .rev()
        .find(|c| (c.ends_with(".service") || c.ends_with(".scope")) && container_in(c).is_none())
        .map(str::to_string)
}

fn container(path: &str) -> Option<Container> {
    let pod_uid = path.split('/').find_map(pod_uid);
    for comp in path.split('/').rev() {
        if let Some((runtime, id)) = container_in(comp) {
            return Some(Container { runtime: runtime.to_string(), id, pod_uid, name: None });
        }
    }
    // cgroup v1 style: /docker/<id>, /kubepods/burstable/pod<uid>/<id>, /lxc/<name>
    let comps: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for w in comps.windows(2) {
        match w[0] {
            "docker" if is_id(w[1]) => return Some(c("docker", w[1], pod_uid)),
            "lxc" => return Some(c("lxc", w[1], None)),
            p if p.starts_with("pod") && is_id(w[1]) => return Some(c("containerd", w[1], pod_uid)),
            _ => {}
        }
    }
    if let Some(name) = comps.first().and_then(|c| c.strip_prefix("lxc.payload.")) {
        return Some(c("lxc", name, None));
    }
    None
}

fn c(runtime: &str, id: &str, pod_uid: Option<String>) -> Container {
    Container { runtime: runtime.to_string(), id: id.to_string(), pod_uid, name: None }
}

/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
/// `libpod-<id>.scope`.
fn container_in(comp: &str) -> Option<(&'static str, String)> {
    let stem = comp.strip_suffix(".scope").unwrap_or(comp);
    for (prefix, runtime) in
        [("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman")]
    {
        if let Some(id) = stem.strip_prefix(prefix)
            && is_id(id)
        {
            return Some((runtime, id.to_string()));
        }
    }
    None
}

/// `kubepods-burstable-pod1a2b_3c4d.slice` or `pod1a2b-3c4d` -> `1a2b-3c4d`.
fn pod_uid(comp: &str) -> Option<String> {
    let stem = comp.strip_suffix(".slice").unwrap_or(comp);
    let i = stem.rfind("pod")?;
    let uid = &stem[i + 3..];
    let ok = uid.len() >= 32 && uid.chars().all(|ch| ch.is_ascii_hexdigit() || ch == '_' || ch == '-');
    ok.then(|| uid.replace('_', "-"))
}

fn is_id(s: &str) -> bool {
    s.len() >= 12 && s.chars().all(|ch| ch.is_ascii_hexdigit())
}

/// Where container runtimes keep their metadata on this host.
#[derive(Debug, Clone)]
pub struct Runtimes {
    /// Docker's data root (`data-root` in /etc/docker/daemon.json, else
    /// /var/lib/docker).
    pub docker: PathBuf,
    /// Podman's (root) storage: overlay-containers/containers.json.
    pub podman: PathBuf,
}

impl Runtimes {
    /// The roots this host uses. `PORTCTL_DOCKER_ROOT` and
    /// `PORTCTL_PODMAN_ROOT` override them (a data root elsewhere, and the
    /// tests' fake metadata).
    pub fn detect() -> Runtimes {
        let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        let docker = env("PORTCTL_DOCKER_ROOT").unwrap_or_else(|| {
            std::fs::read_to_string("/etc/docker/daemon.json")
                .ok()
                .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                .and_then(|v| v.get("data-root").and_then(|r| r.as_str()).map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("/var/lib/docker"))
        });
        let podman = env("PORTCTL_PODMAN_ROOT").unwrap_or_else(|| PathBuf::from("/var/lib/containers/storage"));
        Runtimes { docker, podman }
    }

    /// The container's name from local metadata, without asking a daemon.
    pub fn name(&self, c: &Container) -> Option<String> {
        match c.runtime.as_str() {
            "docker" => docker_config(&self.docker, &c.id)
                .and_then(|v| v.get("Name")?.as_str().map(|n| n.trim_start_matches('/').to_string())),
            "podman" => {
                let t = std::fs::read_to_string(self.podman.join("overlay-containers/containers.json")).ok()?;
                let v: serde_json::Value = serde_json::from_str(&t).ok()?;
                v.as_array()?
                    .iter()
                    .find(|e| e.get("id").and_then(|i| i.as_str()) == Some(&c.id))?
                    .get("names")?
                    .as_array()?
                    .first()?
                    .as_str()
                    .map(str::to_string)
            }
            "lxc" => Some(c.id.clone()),
            _ => None,
        }
    }

    /// The Docker container that has `ip` on one of its networks: (id, name).
    pub fn docker_by_ip(&self, ip: IpAddr) -> Option<(String, String)> {
        let ip = ip.to_string();
        for e in std::fs::read_dir(self.docker.join("containers")).ok()?.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let Some(v) = docker_config(&self.docker, &id) else { continue };
            let nets = v.pointer("/NetworkSettings/Networks").and_then(|n| n.as_object());
            let hit =
                nets.is_some_and(|n| n.values().any(|net| net.get("IPAddress").and_then(|a| a.as_str()) == Some(&ip)));
            if hit {
                let name = v.get("Name").and_then(|n| n.as_str()).unwrap_or("").trim_start_matches('/').to_string();
                return Some((id, name));
            }
        }
        None
    }
}

fn docker_config(root: &Path, id: &str) -> Option<serde_json::Value> {
    if !is_id(id) {
        return None;
    }
    let t = std::fs::read_to_string(root.join("containers").join(id).join("config.v2.json")).ok()?;
    serde_json::from_str(&t).ok()
}

/// What a userland proxy (docker-proxy) forwards to, from its command line:
/// `-proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2
/// -container-port 80` (one or two dashes, `=` or a space).
pub fn proxy_target(cmdline: &str) -> Option<(IpAddr, u16)> {
    let args: Vec<&str> = cmdline.split_whitespace().collect();
    let get = |key: &str| {
        args.iter().enumerate().find_map(|(i, a)| {
            let a = a.trim_start_matches('-');
            if let Some(v) = a.strip_prefix(key).and_then(|r| r.strip_prefix('=')) {
                return Some(v.to_string());
            }
            (a == key).then(|| args.get(i + 1).map(|v| v.to_string())).flatten()
        })
    };
    let ip = get("container-ip")?.parse().ok()?;
    let port = get("container-port")?.parse().ok()?;
    Some((ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1c0a4e3b7d2e9f8a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f";

    #[test]
    fn systemd_service_v2() {
        let c = parse("0::/system.slice/nginx.service\n").unwrap();
        assert_eq!(c.unit.as_deref(), Some("nginx.service"));
        assert_eq!(c.container, None);
        let c = parse("0::/user.slice/user-1000.slice/session-3.scope\n").unwrap();
        assert_eq!(c.unit.as_deref(), Some("session-3.scope"));
    }

    #[test]
    fn docker_v2_and_v1() {
        let c = parse(&format!("0::/system.slice/docker-{ID}.scope\n")).unwrap();
        assert_eq!(c.container, Some(Container { runtime: "docker".into(), id: ID.into(), pod_uid: None, name: None }));
        assert_eq!(c.unit, None, "a container scope is not the unit to name");
        let v1 = format!("12:pids:/docker/{ID}\n11:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n0::/\n");
        let c = parse(&v1).unwrap();
        assert_eq!(c.container.unwrap().runtime, "docker");
    }

    #[test]
    fn kubernetes_containerd_and_crio() {
        let path = format!(
            "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7a1c2b3d_4e5f_6a7b_8c9d_0e1f2a3b4c5d.slice/cri-containerd-{ID}.scope\n"
        );
        let c = parse(&path).unwrap().container.unwrap();
        assert_eq!(c.runtime, "containerd");
        assert_eq!(c.id, ID);
        assert_eq!(c.pod_uid.as_deref(), Some("7a1c2b3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"));
        let c = parse(&format!(
            "0::/kubepods.slice/kubepods-pod7a1c2b3d_4e5f_6a7b_8c9d_0e1f2a3b4c5d.slice/crio-{ID}.scope"
        ))
        .unwrap()
        .container
        .unwrap();
        assert_eq!(c.runtime, "cri-o");
        let v1 = format!("4:pids:/kubepods/burstable/pod7a1c2b3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d/{ID}\n");
        let c = parse(&v1).unwrap().container.unwrap();
        assert_eq!(
            (c.runtime.as_str(), c.pod_uid.as_deref()),
            ("containerd", Some("7a1c2b3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d"))
        );
    }

    #[test]
    fn podman_and_lxc() {
        let c = parse(&format!("0::/machine.slice/libpod-{ID}.scope/container\n")).unwrap().container.unwrap();
        assert_eq!(c.runtime, "podman");
        let c = parse("0::/lxc.payload.web01/system.slice/nginx.service\n").unwrap();
        assert_eq!(
            c.container.unwrap(),
            Container { runtime: "lxc".into(), id: "web01".into(), pod_uid: None, name: None }
        );
        assert_eq!(c.unit.as_deref(), Some("nginx.service"));
        let c = parse("5:cpuset:/lxc/db02\n").unwrap().container.unwrap();
        assert_eq!(c.id, "db02");
    }

    #[test]
    fn docker_proxy_command_lines() {
        let cmd = "/usr/bin/docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80 -use-listen-fd";
        assert_eq!(proxy_target(cmd), Some(("172.17.0.2".parse().unwrap(), 80)));
        let cmd = "docker-proxy --proto=udp --host-ip=:: --host-port=53 --container-ip=fd00::5 --container-port=5353";
        assert_eq!(proxy_target(cmd), Some(("fd00::5".parse().unwrap(), 5353)));
        assert_eq!(proxy_target("nginx -g daemon off;"), None);
        assert_eq!(proxy_target("docker-proxy -container-ip 172.17.0.2"), None);
    }

    #[test]
    fn names_from_local_runtime_metadata() {
        let root = std::env::temp_dir().join(format!("portctl-rt-{}", std::process::id()));
        let cdir = root.join("docker/containers").join(ID);
        std::fs::create_dir_all(&cdir).unwrap();
        std::fs::write(
            cdir.join("config.v2.json"),
            r#"{"ID":"x","Name":"/web","NetworkSettings":{"Networks":{"bridge":{"IPAddress":"172.17.0.2"}}}}"#,
        )
        .unwrap();
        let pdir = root.join("podman/overlay-containers");
        std::fs::create_dir_all(&pdir).unwrap();
        std::fs::write(pdir.join("containers.json"), format!(r#"[{{"id":"{ID}","names":["db"]}}]"#)).unwrap();
        let rt = Runtimes { docker: root.join("docker"), podman: root.join("podman") };
        let c = |runtime: &str| Container { runtime: runtime.into(), id: ID.into(), pod_uid: None, name: None };
        assert_eq!(rt.name(&c("docker")).as_deref(), Some("web"));
        assert_eq!(rt.name(&c("podman")).as_deref(), Some("db"));
        assert_eq!(rt.name(&c("containerd")), None);
        assert_eq!(rt.docker_by_ip("172.17.0.2".parse().unwrap()), Some((ID.to_string(), "web".to_string())));
        assert_eq!(rt.docker_by_ip("172.17.0.3".parse().unwrap()), None);
        // Ids are checked: no path tricks through a crafted cgroup.
        assert_eq!(docker_config(&root.join("docker"), "../../etc"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn plain_and_garbage() {
        assert_eq!(parse("0::/\n").unwrap().unit, None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("garbage"), None);
    }

    proptest::proptest! {
        /// Cgroup paths are chosen by whoever creates the cgroup: anything
        /// parses to a context or none, never a panic, and a container id
        /// cut for display stays whole characters.
        #[test]
        fn random_cgroup_files_never_panic(text in "\\PC{0,300}") {
            if let Some(ct) = parse(&text).and_then(|c| c.container) {
                let _ = crate::model::short_id(&ct.id);
            }
        }

        #[test]
        fn cgroup_like_paths_never_panic(parts in proptest::collection::vec("(docker-|libpod-|crio-|cri-containerd-|lxc\\.payload\\.|pod)?[0-9a-fé.x_-]{0,70}(\\.scope|\\.service)?", 0..6)) {
            let text = format!("0::/{}\n", parts.join("/"));
            let _ = parse(&text);
            let _ = parse(&format!("12:pids:/{}\n", parts.join("/")));
        }
    }
}
