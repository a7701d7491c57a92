//! What to do next after a refusal any verb can meet: a token the server
//! does not know or a missing one, a request without an account on a
//! server with `auth = "none"`, an address that is not an imgapi server's.
//! Errors that already carry a hint (given where they happened) keep it.

use super::config::{Conn, ConnArgs};
use super::error::ClientError;

/// `e` with the hint its refusal calls for, if any.
pub fn explain(e: ClientError, conn: &ConnArgs) -> ClientError {
    let some = |o: &Option<String>| o.as_deref().is_some_and(|s| !s.is_empty());
    explain_for(e, &conn.url, some(&conn.token), some(&conn.account))
}

/// [`explain`] with the resolved connection.
pub fn explain_conn(e: ClientError, conn: &Conn) -> ClientError {
    explain_for(e, &conn.url, conn.token.is_some(), conn.account.is_some())
}

fn explain_for(e: ClientError, url: &str, token: bool, account: bool) -> ClientError {
    if matches!(e, ClientError::Hinted { .. }) {
        return e;
    }
    let Some((status, body)) = e.server() else {
        return e;
    };
    let url = url.trim_end_matches('/');
    let field = |f: &str, code: &str| {
        body.errors
            .iter()
            .flatten()
            .any(|e| e.field == f && e.code == code)
    };
    let hint = if status == 401 && token {
        Some(format!(
            "{url} does not know this token (--token or IMGAPI_TOKEN): a token works only on \
             the server that made it; an operator makes one there with \
             `imgapi account create --login NAME`"
        ))
    } else if status == 401 {
        Some(format!(
            "{url} requires a token (its auth = \"token\"): give it with --token or IMGAPI_TOKEN"
        ))
    } else if body.code == "OperatorOnly" && account {
        Some(
            "only the operator may do this: act without --account (IMGAPI_ACCOUNT) and, on a \
             server with auth = \"token\", with an operator's token"
                .into(),
        )
    } else if body.code == "OperatorOnly" {
        Some(
            "only the operator may do this: use an operator's token (an operator makes one \
             with `imgapi account create --login NAME --operator`)"
                .into(),
        )
    } else if field("owner", "MissingParameter") && !account && !token {
        Some(
            "say whose image it is: --account UUID (or IMGAPI_ACCOUNT), or an \"owner\" in the \
             manifest (without an account, a server with auth = \"none\" takes a request as \
             the operator's, who owns no images)"
                .into(),
        )
    } else if body.code == "InvalidParameter" && field("account", "Invalid") {
        Some("--account (IMGAPI_ACCOUNT) must be an account's uuid".into())
    } else if body.code.starts_with("HTTP") {
        Some(format!(
            "{url} answered HTTP {status} without an IMGAPI error: is it the imgapi server? \
             Give the server's address (scheme, host and port, e.g. http://127.0.0.1:8080) \
             with --url or IMGAPI_URL"
        ))
    } else if status == 404
        && body.code == "ResourceNotFound"
        && reqwest::Url::parse(url).is_ok_and(|u| u.path() != "/")
    {
        Some(format!(
            "--url (IMGAPI_URL) {url} has a path: the server answers at its root; give \
             scheme, host and port only, e.g. http://127.0.0.1:8080"
        ))
    } else {
        None
    };
    match hint {
        Some(h) => e.hint(h),
        None => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::ErrorBody;

    fn conn(args: &[&str]) -> ConnArgs {
        let arg = |k: &str| {
            args.iter()
                .position(|a| *a == k)
                .map(|i| args[i + 1].to_string())
        };
        ConnArgs {
            url: arg("--url").unwrap_or_default(),
            token: arg("--token"),
            account: arg("--account"),
            json: false,
            retries: 0,
            stall_timeout: 1,
        }
    }

    fn refusal(status: u16, code: &str) -> ClientError {
        ClientError::Server {
            status,
            body: ErrorBody {
                code: code.into(),
                message: "m".into(),
                errors: None,
            },
        }
    }

    fn hint(e: &ClientError) -> &str {
        match e {
            ClientError::Hinted { hint, .. } => hint,
            _ => "",
        }
    }

    #[test]
    fn a_refusal_gets_the_hint_of_its_cause_and_keeps_its_exit_code() {
        let plain = conn(&["--url", "http://h:1"]);
        let e = explain(refusal(401, "UnauthorizedError"), &plain);
        assert!(hint(&e).starts_with("http://h:1 requires a token"), "{e:?}");
        assert_eq!(e.exit_code(), 1);
        let tok = conn(&["--url", "http://h:1", "--token", "t"]);
        let e = explain(refusal(401, "UnauthorizedError"), &tok);
        assert!(
            hint(&e).starts_with("http://h:1 does not know this token"),
            "{e:?}"
        );
        let e = explain(refusal(404, "HTTP404"), &plain);
        assert!(hint(&e).contains("is it the imgapi server?"), "{e:?}");
        let e = explain(refusal(404, "ResourceNotFound"), &plain);
        assert_eq!(hint(&e), "", "a missing image is no address problem");
        let pathy = conn(&["--url", "http://h:1/api"]);
        let e = explain(refusal(404, "ResourceNotFound"), &pathy);
        assert!(hint(&e).contains("has a path"), "{e:?}");
        // A hint given where the error happened is kept.
        let e = explain(refusal(401, "UnauthorizedError").hint("first"), &plain);
        assert_eq!(hint(&e), "first");
    }
}
