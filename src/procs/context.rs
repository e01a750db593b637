//! Where a process runs, from `/proc/PID/cgroup`: its systemd unit and, for
//! containers, the runtime and container id (Kubernetes: the pod uid too).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Context {
    /// The cgroup path (v2 unified line, else the first v1 hierarchy's).
    pub cgroup: String,
    /// systemd unit: `nginx.service`, `session-3.scope`.
    pub unit: Option<String>,
    pub container: Option<Container>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// `docker`, `containerd`, `cri-o`, `podman`, `lxc`.
    pub runtime: String,
    /// Full id (64 hex) or, for LXC, the container name.
    pub id: String,
    /// Kubernetes pod uid, when the path names one.
    pub pod_uid: Option<String>,
}

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
            return Some(Container { runtime: runtime.to_string(), id, pod_uid });
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
    Container { runtime: runtime.to_string(), id: id.to_string(), pod_uid }
}

/// `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
/// `libpod-<id>.scope`.
fn container_in(comp: &str) -> Option<(&'static str, String)> {
    let stem = comp.strip_suffix(".scope").unwrap_or(comp);
    for (prefix, runtime) in
        [("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman")]
    {
        if let Some(id) = stem.strip_prefix(prefix) {
            if is_id(id) {
                return Some((runtime, id.to_string()));
            }
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
        assert_eq!(c.container, Some(Container { runtime: "docker".into(), id: ID.into(), pod_uid: None }));
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
        assert_eq!(c.container.unwrap(), Container { runtime: "lxc".into(), id: "web01".into(), pod_uid: None });
        assert_eq!(c.unit.as_deref(), Some("nginx.service"));
        let c = parse("5:cpuset:/lxc/db02\n").unwrap().container.unwrap();
        assert_eq!(c.id, "db02");
    }

    #[test]
    fn plain_and_garbage() {
        assert_eq!(parse("0::/\n").unwrap().unit, None);
        assert_eq!(parse(""), None);
        assert_eq!(parse("garbage"), None);
    }
}
