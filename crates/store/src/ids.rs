//! Identifiers as types, from one macro: a sandbox id cannot be passed
//! where a project name is expected. Each is a string newtype that reads as
//! `&str` (so lookups and formatting stay plain), stored and serialized as
//! its text. What makes one well-formed is checked where it is minted or
//! parsed (the server); the store trusts what it wrote.

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash,
            serde::Serialize, serde::Deserialize, sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

typed_id!(
    /// `sbx-` and lowercase letters or digits: a sandbox, and the DNS label
    /// it answers at.
    SandboxId
);
typed_id!(
    /// 1–64 of `[a-z0-9_.-]`: a project, in URLs and the CLI.
    ProjectName
);
typed_id!(
    /// A request's `X-Request-Id`: the one the client sent, or one minted
    /// for it; what the log, the audit log and the timeline link by.
    RequestId
);
typed_id!(
    /// `we_…`: a sandbox's webhook endpoint.
    EndpointId
);
typed_id!(
    /// A job on a sandbox clock.
    JobId
);
typed_id!(
    /// `key_…`: one of a sandbox's API keys (not the secret itself).
    KeyId
);
typed_id!(
    /// `usr_…`: a developer or admin account.
    AccountId
);
typed_id!(
    /// `tok_…`: a personal access token or a browser session (not the
    /// secret itself).
    TokenId
);

/// An event: its number in the sandbox's outbox, `evt_<number>` outside
/// (also the `webhook-id` of every delivery of it, the same across retries,
/// so receivers can deduplicate by it).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, sqlx::Type,
)]
#[serde(transparent)]
#[sqlx(transparent)]
pub struct EventId(pub i64);

impl EventId {
    const PREFIX: &'static str = "evt_";

    /// `evt_<number>`, or `None`.
    pub fn parse(text: &str) -> Option<Self> {
        text.strip_prefix(Self::PREFIX)?.parse().ok().map(Self)
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", Self::PREFIX, self.0)
    }
}
