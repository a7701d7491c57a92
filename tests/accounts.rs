//! `imgapi account create`: logins that are refused (UUID-shaped, reserved,
//! malformed, taken) and ones that are accepted, run as the real binary.

use crate::common;

use common::*;

fn create(s: &Server, login: &str) -> (bool, String, String) {
    let o = s.admin(&["account", "create", "--login", login]);
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A login that parses as a UUID could name another account's
/// `/{uuid}/stor/` namespace: refused, hyphenated or not, in any case.
#[tokio::test]
async fn uuid_shaped_logins_are_refused() {
    let s = Server::start().await;
    let simple = EMPEROR.replace('-', "");
    for login in [EMPEROR, EMPEROR.to_uppercase().as_str(), simple.as_str()] {
        let (ok, out, err) = create(&s, login);
        assert!(!ok, "{login} was accepted: {out}");
        assert!(err.contains("may not be a UUID"), "{login}: {err}");
        assert!(!out.contains("token:"), "{out}");
    }
}

#[tokio::test]
async fn reserved_and_malformed_logins_are_refused() {
    let s = Server::start().await;
    for login in ["imgapi", "assets", "admin", "root", "operator", "Admin"] {
        let (ok, _, err) = create(&s, login);
        assert!(!ok, "{login} was accepted");
        assert!(err.contains("reserved"), "{login}: {err}");
    }
    for login in ["ab", "1abc", "a b", "a/b"] {
        let (ok, _, err) = create(&s, login);
        assert!(!ok, "{login} was accepted");
        assert!(err.contains("invalid login"), "{login}: {err}");
    }
}

#[tokio::test]
async fn ordinary_logins_are_accepted_once() {
    let s = Server::start().await;
    for login in ["alice", "root-op", "deadbeef", "b0b.smith@example"] {
        let (ok, out, err) = create(&s, login);
        assert!(ok, "{login}: {err}");
        assert!(out.contains(&format!("login: {login}")), "{out}");
        assert!(out.contains("token: imgapi_"), "{out}");
    }
    let (ok, _, err) = create(&s, "alice");
    assert!(!ok);
    assert!(err.contains("account \"alice\" already exists"), "{err}");
}
