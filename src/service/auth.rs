//! Who is asking: bearer tokens issued to named people with one role each, and what
//! each role may do (least privilege, FAILURES "Maker ≠ checker").
//!
//! **Invariants:** a token is 32 random bytes shown once; only its SHA-256 is stored;
//! an operator computes, exports and uploads but never approves; an approver approves
//! and changes nothing else; an auditor reads everything and changes nothing. The web
//! page's cookie carries the same token (HttpOnly, SameSite=Strict) and a request
//! that changes anything with the cookie must also carry the page's CSRF header.

use ring::rand::{SecureRandom, SystemRandom};

/// A role, fixed when the token is issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Operator,
    Approver,
    Auditor,
}

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permission {
    /// Runs, lines, diffs, reports, approval messages.
    Read,
    ReadAuditLog,
    CreateRun,
    Export,
    UploadResults,
    Reconcile,
    Approve,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role {0:?}: use operator, approver or auditor")]
pub struct UnknownRole(pub String);

impl Role {
    pub fn parse(text: &str) -> Result<Role, UnknownRole> {
        match text {
            "operator" => Ok(Role::Operator),
            "approver" => Ok(Role::Approver),
            "auditor" => Ok(Role::Auditor),
            other => Err(UnknownRole(other.to_string())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Auditor => "auditor",
        }
    }

    /// The role table (README): read is everyone's; the audit log is the auditor's.
    pub fn may(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Operator => matches!(
                permission,
                Read | CreateRun | Export | UploadResults | Reconcile
            ),
            Role::Approver => matches!(permission, Read | Approve),
            Role::Auditor => matches!(permission, Read | ReadAuditLog),
        }
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Principal {
    pub user: String,
    pub role: Role,
}

/// A new token: `dbt_` and 64 hex characters.
pub fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0_u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
    Ok(format!("dbt_{}", hex::encode(bytes)))
}

/// What is stored for a token.
pub fn token_sha256(token: &str) -> String {
    crate::sign::sha256_hex(token.as_bytes())
}

/// The page's CSRF value for a token: sent back in `X-Disburse-CSRF` by the page's
/// script; a cross-site form cannot set it.
pub fn csrf_for(token: &str) -> String {
    crate::sign::sha256_hex(format!("disburse-csrf-v1:{token}").as_bytes())
}

/// The bearer token of an `Authorization` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(token.trim())
        .filter(|t| !t.is_empty())
}

/// The token in a `Cookie` header value.
pub fn cookie_token(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty())
}

pub const COOKIE_NAME: &str = "disburse_token";
pub const CSRF_HEADER: &str = "x-disburse-csrf";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_privilege_table() {
        use Permission::*;
        let all = [
            Read,
            ReadAuditLog,
            CreateRun,
            Export,
            UploadResults,
            Reconcile,
            Approve,
        ];
        let allowed = |role: Role| {
            all.iter()
                .filter(|p| role.may(**p))
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            allowed(Role::Operator),
            [Read, CreateRun, Export, UploadResults, Reconcile]
        );
        assert_eq!(allowed(Role::Approver), [Read, Approve]);
        assert_eq!(allowed(Role::Auditor), [Read, ReadAuditLog]);
    }

    #[test]
    fn tokens_headers_and_cookies() {
        let token = new_token().unwrap();
        assert!(token.starts_with("dbt_") && token.len() == 68);
        assert_ne!(token, new_token().unwrap());
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(cookie_token("a=1; disburse_token=xyz"), Some("xyz"));
        assert_eq!(cookie_token("a=1"), None);
        assert_ne!(csrf_for("a"), csrf_for("b"));
        assert!(Role::parse("admin").is_err());
    }
}
