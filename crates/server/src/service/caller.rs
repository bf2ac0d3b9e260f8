//! Who is asking. Every service takes the caller and scopes what it reads
//! and changes by it, so the control plane, the portal, the CLI and MCP
//! tools cannot differ on who sees what.

use sbx_store::{AccountId, Role};

use super::{ServiceError, ServiceResult};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The server itself (the demo set-up, expiry, `sbx mock`): sees all.
    System,
    /// The admin token, the bootstrap admin: sees all, owns nothing.
    AdminToken,
    /// A signed-in account.
    Account { id: AccountId, role: Role },
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        match self {
            Self::System | Self::AdminToken => true,
            Self::Account { role, .. } => *role == Role::Admin,
        }
    }

    /// The account what the caller creates belongs to.
    pub fn owner(&self) -> Option<&AccountId> {
        match self {
            Self::Account { id, .. } => Some(id),
            Self::System | Self::AdminToken => None,
        }
    }

    /// Whether something owned by `owner` is the caller's to see: its own,
    /// or anything for an admin. Another's answers "does not exist".
    pub fn sees(&self, owner: Option<&AccountId>) -> bool {
        self.is_admin() || owner.is_some_and(|owner| self.owner() == Some(owner))
    }

    /// Refuses a developer what only admins may do (publish projects,
    /// manage accounts), saying so: these are not secrets to hide.
    pub fn must_be_admin(&self, what: &str) -> ServiceResult<()> {
        if self.is_admin() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!("only admins may {what}")))
        }
    }

    /// The audit log's name for the caller: `system`, `admin` (the token)
    /// or the account's id.
    pub fn actor(&self) -> String {
        match self {
            Self::System => "system".to_owned(),
            Self::AdminToken => "admin".to_owned(),
            Self::Account { id, .. } => id.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn developers_see_only_their_own_and_admins_see_all() {
        let alice = AccountId::from("usr_alice");
        let bob = AccountId::from("usr_bob");
        let developer = Caller::Account {
            id: alice.clone(),
            role: Role::Developer,
        };
        assert!(developer.sees(Some(&alice)));
        assert!(!developer.sees(Some(&bob)));
        assert!(!developer.sees(None));
        assert!(developer.must_be_admin("publish").is_err());
        let admin = Caller::Account {
            id: bob.clone(),
            role: Role::Admin,
        };
        for caller in [admin, Caller::AdminToken, Caller::System] {
            assert!(caller.sees(Some(&alice)) && caller.sees(None));
            assert!(caller.must_be_admin("publish").is_ok());
        }
    }
}
