//! The store contract, run against real SQLite and real PostgreSQL: every
//! test runs on both (`<test>::sqlite`, `<test>::postgres`).

use sbx_engine::ProjectFiles;
use sbx_store::{
    AccountRecord, AttemptRecord, ChangeSet, ClockChange, DeliveryClaim, EndpointRecord,
    IdempotentAnswer, InvitationRecord, JobRecord, KeyKind, KeyPermissions, KeyRecord, LogQuery,
    LogRecord, PgStore, ResourceRow, Role, SandboxRecord, SqliteStore, Store, StoreError,
    TokenKind, TokenRecord, TransitionRecord,
};
use std::sync::Arc;

/// Where a test's store lives, so that it can be opened again (another
/// process) and written behind its back.
enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Place {
    fn sqlite() -> Option<Self> {
        Some(Self::Sqlite(tempfile::tempdir().unwrap()))
    }

    /// A fresh database on the server `SBX_TEST_POSTGRES_URL` names
    /// (`scripts/test.sh` starts one); without it the test is skipped,
    /// except in CI, which must test PostgreSQL.
    async fn postgres() -> Option<Self> {
        let Ok(server) = std::env::var("SBX_TEST_POSTGRES_URL") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "SBX_TEST_POSTGRES_URL is unset: scripts/test.sh starts PostgreSQL"
            );
            eprintln!(
                "skipped: SBX_TEST_POSTGRES_URL is unset (scripts/test.sh starts PostgreSQL)"
            );
            return None;
        };
        let name = format!("sbx_store_{:016x}", rand_suffix());
        Some(Self::Postgres(
            PgStore::create_database(&server, &name).await.unwrap(),
        ))
    }

    /// The store, as a server opens it: every opening seals secrets under
    /// one key, as servers sharing a database must.
    async fn open(&self) -> Arc<dyn Store> {
        let key =
            sbx_store::sealed::parse_key("c2J4LXRlc3Qtc2VjcmV0cy1rZXktMzItYnl0ZXMhISE=").unwrap();
        let sealer = Arc::new(sbx_store::Sealer::new(&key, &[]));
        match self {
            Self::Sqlite(dir) => Arc::new(
                SqliteStore::open_dir(dir.path())
                    .await
                    .unwrap()
                    .with_sealer(sealer),
            ),
            Self::Postgres(url) => {
                Arc::new(PgStore::open_url(url).await.unwrap().with_sealer(sealer))
            }
        }
    }

    /// The store as server `replica` opens it (on PostgreSQL its
    /// connections name it, and the database fences its writes).
    async fn open_as(&self, replica: &str) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(_) => self.open().await,
            Self::Postgres(url) => Arc::new(server_store(url, replica).await),
        }
    }

    /// Runs `sql` (one `$1`, bound to `value`) straight on the database.
    async fn execute(&self, sql: &str, value: &str) {
        match self {
            Self::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.path().join("sbx.db").display());
                let raw = sqlx::SqlitePool::connect(&url).await.unwrap();
                sqlx::query(sql).bind(value).execute(&raw).await.unwrap();
            }
            Self::Postgres(url) => {
                let raw = sqlx::PgPool::connect(url).await.unwrap();
                sqlx::query(sql).bind(value).execute(&raw).await.unwrap();
            }
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    hasher.finish()
}

/// Runs `$test(place)` on each backend, as `$name::sqlite` and
/// `$name::postgres`.
macro_rules! on_both_backends {
    ($name:ident, $test:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                if let Some(place) = super::Place::sqlite() {
                    super::$test(place).await;
                }
            }

            #[tokio::test]
            async fn postgres() {
                if let Some(place) = super::Place::postgres().await {
                    super::$test(place).await;
                }
            }
        }
    };
}

/// Files with one environment parameter.
fn with_env() -> ProjectFiles {
    ProjectFiles {
        env: serde_json::json!({"a": 1}).as_object().unwrap().clone(),
        ..ProjectFiles::default()
    }
}

fn sandbox(id: &str, expires_at_ms: Option<i64>) -> SandboxRecord {
    SandboxRecord {
        id: id.into(),
        project: "pets".into(),
        revision: 1,
        key_hash: format!("hash-{id}"),
        seed: id.to_owned(),
        auth: sbx_engine::AuthMode::Spec,
        label: None,
        created_at_ms: 1,
        expires_at_ms,
        pinned: false,
        env: serde_json::Map::new(),
        chaos: None,
        scenario: None,
        clock_offset_ms: 0,
        clock_frozen_ms: None,
        seeded_at_ms: 1,
        webhook_schedule: sbx_webhooks::ScheduleName::Standard,
        owner: None,
        last_active_at_ms: None,
        rate_limits: None,
        isolation: None,
    }
}

fn job(id: &str, due_at_ms: i64) -> JobRecord {
    JobRecord {
        origin: None,
        id: id.into(),
        seq: 0,
        due_at_ms,
        action: serde_json::json!({"kind": "script", "name": "settle"}),
        payload: serde_json::json!({}),
        scheduled_at_ms: 0,
        error: None,
    }
}

/// Jobs run in (due, scheduling) order; finished ones go, failed ones stay
/// with their error; transitions are kept per record; reset drops both.
async fn jobs_contract(store: &dyn Store) {
    let ids = |jobs: Vec<JobRecord>| jobs.into_iter().map(|j| j.id).collect::<Vec<_>>();
    let scheduled = ChangeSet {
        sandbox_id: "sbx-a".into(),
        jobs: vec![job("j3", 30), job("j1", 10), job("j2", 10), job("j4", 40)],
        transitions: vec![TransitionRecord {
            collection: "pets".into(),
            resource_id: "1".into(),
            from: None,
            to: "available".into(),
            at_ms: 5,
            cause: "operation createPet".into(),
        }],
        ..ChangeSet::default()
    };
    store.save_changes(&[scheduled]).await.unwrap();
    assert_eq!(
        ids(store.pending_jobs("sbx-a", Some(30), 10).await.unwrap()),
        ["j1", "j2", "j3"]
    );
    assert_eq!(
        ids(store.pending_jobs("sbx-a", None, 2).await.unwrap()),
        ["j1", "j2"]
    );
    assert_eq!(
        store.next_jobs().await.unwrap(),
        vec![("sbx-a".to_owned(), 10)]
    );
    let finished = ChangeSet {
        sandbox_id: "sbx-a".into(),
        finished_jobs: vec![("j1".into(), None), ("j2".into(), Some("boom".into()))],
        ..ChangeSet::default()
    };
    store.save_changes(&[finished]).await.unwrap();
    assert_eq!(
        ids(store.pending_jobs("sbx-a", None, 10).await.unwrap()),
        ["j3", "j4"]
    );
    let failed = store.failed_jobs("sbx-a", 10).await.unwrap();
    assert_eq!(
        (failed[0].id.as_str(), failed[0].error.as_deref()),
        ("j2", Some("boom"))
    );
    let history = store.list_transitions("sbx-a", "pets", "1").await.unwrap();
    assert_eq!((history.len(), history[0].to.as_str()), (1, "available"));
    assert!(
        store
            .list_transitions("sbx-other", "pets", "1")
            .await
            .unwrap()
            .is_empty()
    );

    store.clear_resources("sbx-a", 77).await.unwrap();
    assert!(
        store
            .pending_jobs("sbx-a", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.failed_jobs("sbx-a", 10).await.unwrap().is_empty());
    assert!(
        store
            .list_transitions("sbx-a", "pets", "1")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .get_sandbox("sbx-a")
            .await
            .unwrap()
            .unwrap()
            .seeded_at_ms,
        77
    );
}

fn row(id: &str, value: Option<&str>, version: u64) -> ResourceRow {
    ResourceRow {
        collection: "pets".to_owned(),
        id: id.to_owned(),
        scope: String::new(),
        seq: 1_000_000,
        value: value.map(str::to_owned),
        version,
    }
}

async fn contract(store: &dyn Store) {
    let project = store
        .create_project(
            "pets",
            "openapi: 3.0.0",
            &ProjectFiles::default(),
            "usr_a",
            10,
        )
        .await
        .unwrap();
    assert_eq!(project.latest_revision, 1);
    assert!(matches!(
        store
            .create_project("pets", "x", &ProjectFiles::default(), "usr_a", 11)
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .add_revision("pets", "openapi: 3.1.0", &with_env(), "usr_a", 12)
            .await
            .unwrap(),
        2
    );
    assert!(matches!(
        store
            .add_revision("nope", "x", &ProjectFiles::default(), "usr_a", 12)
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.get_revision("pets", 1).await.unwrap().unwrap().spec,
        "openapi: 3.0.0"
    );
    let history = store.list_revisions("pets").await.unwrap();
    let shown: Vec<(u32, i64, &str)> = history
        .iter()
        .map(|r| (r.revision, r.created_at_ms, r.author.as_str()))
        .collect();
    assert_eq!(shown, [(2, 12, "usr_a"), (1, 10, "usr_a")]);
    assert!(store.list_revisions("nope").await.unwrap().is_empty());
    assert_eq!(
        store
            .get_project("pets")
            .await
            .unwrap()
            .unwrap()
            .latest_revision,
        2
    );

    assert_eq!(
        store.get_revision("pets", 2).await.unwrap().unwrap().files,
        with_env()
    );
    store
        .create_sandbox(&sandbox("sbx-a", None), &[])
        .await
        .unwrap();
    let env = serde_json::json!({"k": "v"}).as_object().unwrap().clone();
    assert!(store.set_sandbox_env("sbx-a", &env).await.unwrap());
    assert!(!store.set_sandbox_env("sbx-zz", &env).await.unwrap());
    assert!(
        store
            .set_sandbox_chaos("sbx-a", Some("error=5%"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_sandbox("sbx-a")
            .await
            .unwrap()
            .unwrap()
            .chaos
            .as_deref(),
        Some("error=5%")
    );
    assert!(store.set_sandbox_chaos("sbx-a", None).await.unwrap());
    assert!(
        store
            .set_sandbox_expiry("sbx-a", Some(9_000))
            .await
            .unwrap()
    );
    let expiring = store.get_sandbox("sbx-a").await.unwrap().unwrap();
    assert_eq!(expiring.expires_at_ms, Some(9_000));
    assert!(store.set_sandbox_expiry("sbx-a", None).await.unwrap());
    assert!(!store.set_sandbox_expiry("sbx-zz", None).await.unwrap());
    let advance = ClockChange {
        sandbox_id: "sbx-a".into(),
        at_ms: 1,
        from_ms: 1,
        to_ms: 86_400_001,
        change: "advance P1D".into(),
        request_id: None,
        offset_ms: 86_400_000,
        frozen_ms: Some(7),
    };
    assert!(store.move_clock(&advance).await.unwrap());
    let missing = ClockChange {
        sandbox_id: "sbx-none".into(),
        ..advance
    };
    assert!(
        !store.move_clock(&missing).await.unwrap(),
        "no sandbox, no move"
    );
    let moves = store
        .timeline(
            "sbx-a",
            &sbx_store::TimelineQuery {
                kinds: vec![sbx_store::TimelineKind::Clock],
                since_ms: i64::MIN,
                until_ms: i64::MAX,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(moves.len(), 1, "the move is recorded with the clock");
    let clocked = store.get_sandbox("sbx-a").await.unwrap().unwrap();
    assert_eq!(
        (clocked.clock_offset_ms, clocked.clock_frozen_ms),
        (86_400_000, Some(7))
    );
    assert!(
        store
            .set_sandbox_scenario("sbx-a", Some("declined"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get_sandbox("sbx-a")
            .await
            .unwrap()
            .unwrap()
            .scenario
            .as_deref(),
        Some("declined")
    );
    assert_eq!(
        store.get_sandbox("sbx-a").await.unwrap().unwrap().chaos,
        None
    );
    assert_eq!(
        serde_json::Value::Object(store.get_sandbox("sbx-a").await.unwrap().unwrap().env),
        serde_json::json!({"k": "v"})
    );

    // Resource writes: the highest version wins whatever the arrival order,
    // also within one batch.
    let changes = |rows: Vec<ResourceRow>| ChangeSet {
        sandbox_id: "sbx-a".into(),
        rows,
        ..ChangeSet::default()
    };
    store
        .save_changes(&[
            changes(vec![
                row("1", Some("{\"v\":2}"), 2),
                row("2", Some("{}"), 3),
            ]),
            changes(vec![row("1", Some("{\"v\":1}"), 1)]),
        ])
        .await
        .unwrap();
    store
        .save_changes(&[changes(vec![row("2", None, 4)])])
        .await
        .unwrap();
    let rows = store.load_resources("sbx-a").await.unwrap();
    assert_eq!(
        rows,
        vec![row("1", Some("{\"v\":2}"), 2), row("2", None, 4)]
    );
    assert!(store.load_resources("sbx-other").await.unwrap().is_empty());
    // Records alone in one statement go without a transaction; more than
    // one statement's worth, or records with anything else, in one.
    let many: Vec<_> = (10..260)
        .map(|n| row(&n.to_string(), Some("{}"), 5))
        .collect();
    store.save_changes(&[changes(many)]).await.unwrap();
    store
        .save_changes(&[ChangeSet {
            finished_jobs: vec![("no-such-job".into(), None)],
            ..changes(vec![row("1", Some("{\"v\":3}"), 6)])
        }])
        .await
        .unwrap();
    let rows = store.load_resources("sbx-a").await.unwrap();
    assert_eq!(rows.len(), 252, "every record of the large batch");
    assert_eq!(rows.last(), Some(&row("1", Some("{\"v\":3}"), 6)));
    store.clear_resources("sbx-a", 1).await.unwrap();
    assert!(store.load_resources("sbx-a").await.unwrap().is_empty());
    jobs_contract(store).await;

    store
        .save_changes(&[ChangeSet {
            sandbox_id: "sbx-a".into(),
            rows: Vec::new(),
            events: vec![
                ("pet.created".into(), "{}".into(), 5),
                ("pet.sold".into(), "{}".into(), 6),
            ],
            ..ChangeSet::default()
        }])
        .await
        .unwrap();
    let answer = |fingerprint: &str, at: i64| IdempotentAnswer {
        key: "k1".into(),
        fingerprint: fingerprint.into(),
        status: 201,
        headers: vec![("content-type".into(), "application/json".into())],
        body: b"{}".to_vec(),
        created_at_ms: at,
    };
    for (fingerprint, at) in [("f1", 10), ("f2", 20)] {
        let change = ChangeSet {
            sandbox_id: "sbx-a".into(),
            answers: vec![answer(fingerprint, at)],
            ..ChangeSet::default()
        };
        store.save_changes(&[change]).await.unwrap();
    }
    assert_eq!(
        store.get_idempotent("sbx-a", "k1").await.unwrap(),
        Some(answer("f1", 10)),
        "first writer wins"
    );
    assert_eq!(store.get_idempotent("sbx-other", "k1").await.unwrap(), None);
    assert_eq!(
        store.idempotency_keys(None).await.unwrap(),
        vec![("sbx-a".to_owned(), "k1".to_owned(), 10)]
    );
    assert_eq!(
        store.idempotency_keys(Some("sbx-a")).await.unwrap(),
        vec![("sbx-a".to_owned(), "k1".to_owned(), 10)]
    );
    assert!(
        store
            .idempotency_keys(Some("sbx-other"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.prune_idempotent(11).await.unwrap(), 1);
    assert_eq!(store.get_idempotent("sbx-a", "k1").await.unwrap(), None);
    let events = store.list_events("sbx-a", 10).await.unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].event_type, "pet.sold");
    assert_eq!(store.list_events("sbx-a", 1).await.unwrap().len(), 1);

    store
        .create_sandbox(&sandbox("sbx-b", Some(100)), &[])
        .await
        .unwrap();
    assert!(matches!(
        store.create_sandbox(&sandbox("sbx-a", None), &[]).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.list_sandboxes().await.unwrap().len(), 2);

    assert_eq!(
        store.expire_sandboxes(99).await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        store.expire_sandboxes(100).await.unwrap(),
        vec!["sbx-b".to_owned()]
    );
    assert!(store.get_sandbox("sbx-b").await.unwrap().is_none());
    assert_eq!(
        store
            .get_tombstone("sbx-b")
            .await
            .unwrap()
            .unwrap()
            .expired_at_ms,
        100
    );
    assert_eq!(store.prune_tombstones(101).await.unwrap(), 1);

    assert!(store.delete_sandbox("sbx-a").await.unwrap());
    assert!(!store.delete_sandbox("sbx-a").await.unwrap());

    store
        .create_sandbox(&sandbox("sbx-c", None), &[])
        .await
        .unwrap();
    assert_eq!(
        store.delete_project("pets").await.unwrap(),
        vec!["sbx-c".to_owned()]
    );
    assert!(store.get_project("pets").await.unwrap().is_none());
    assert!(store.get_revision("pets", 1).await.unwrap().is_none());
}

fn account(id: &str, email: &str) -> AccountRecord {
    AccountRecord {
        id: id.into(),
        email: email.to_owned(),
        password_hash: "$argon2id$hash".to_owned(),
        role: Role::Developer,
        created_at_ms: 10,
        disabled_at_ms: None,
    }
}

fn token(id: &str, account: &str, kind: TokenKind, expires_at_ms: Option<i64>) -> TokenRecord {
    TokenRecord {
        id: id.into(),
        account_id: account.into(),
        kind,
        name: format!("token {id}"),
        prefix: "sbx_pat_abcd".to_owned(),
        token_hash: format!("hash-{id}"),
        created_at_ms: 20,
        last_used_at_ms: None,
        expires_at_ms,
        revoked_at_ms: None,
    }
}

/// Accounts, their tokens and invitations; who owns a sandbox and an
/// audit entry.
async fn accounts_contract(store: &dyn Store) {
    let alice = account("usr_alice", "alice@example.com");
    store.create_account(&alice).await.unwrap();
    let twin = account("usr_twin", "alice@example.com");
    assert!(matches!(
        store.create_account(&twin).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store.account_by_email("alice@example.com").await.unwrap(),
        Some(alice.clone())
    );
    let mut changed = alice.clone();
    changed.role = Role::Admin;
    changed.disabled_at_ms = Some(30);
    assert!(store.update_account(&changed).await.unwrap());
    assert_eq!(store.get_account("usr_alice").await.unwrap(), Some(changed));
    assert!(!store.update_account(&twin).await.unwrap());

    let personal = token("tok_a", "usr_alice", TokenKind::Personal, None);
    let session = token("tok_b", "usr_alice", TokenKind::Session, Some(100));
    store.create_token(&personal).await.unwrap();
    store.create_token(&session).await.unwrap();
    let (found, owner) = store.token_by_hash("hash-tok_a").await.unwrap().unwrap();
    assert_eq!(
        (found.id.as_str(), owner.id.as_str()),
        ("tok_a", "usr_alice")
    );
    assert!(store.token_by_hash("hash-nothing").await.unwrap().is_none());
    let listed = store
        .list_tokens("usr_alice", TokenKind::Personal)
        .await
        .unwrap();
    assert_eq!(listed, vec![personal.clone()]);
    store.touch_tokens(&[("tok_a".into(), 50)]).await.unwrap();
    store.touch_tokens(&[("tok_a".into(), 40)]).await.unwrap();
    let (touched, _) = store.token_by_hash("hash-tok_a").await.unwrap().unwrap();
    assert_eq!(
        touched.last_used_at_ms,
        Some(50),
        "last use never goes back"
    );
    assert!(!store.revoke_token("usr_other", "tok_a", 60).await.unwrap());
    assert!(store.revoke_token("usr_alice", "tok_a", 60).await.unwrap());
    assert!(!store.revoke_token("usr_alice", "tok_a", 61).await.unwrap());
    let (revoked, _) = store.token_by_hash("hash-tok_a").await.unwrap().unwrap();
    assert!(!revoked.usable_at(61) && !session.usable_at(100) && session.usable_at(99));
    assert_eq!(store.prune_tokens(101).await.unwrap(), 2);
    assert!(store.token_by_hash("hash-tok_b").await.unwrap().is_none());

    let invitation = InvitationRecord {
        code_hash: "code".to_owned(),
        email: "bob@example.com".to_owned(),
        role: Role::Admin,
        created_by: "admin".to_owned(),
        created_at_ms: 10,
        expires_at_ms: 1_000,
        accepted_at_ms: None,
    };
    store.create_invitation(&invitation).await.unwrap();
    assert!(
        store
            .open_invitation("code", 1_000)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.open_invitation("code", 999).await.unwrap(),
        Some(invitation)
    );
    let bob = account("usr_bob", "bob@example.com");
    let mallory = AccountRecord {
        created_at_ms: 500,
        ..account("usr_mallory", "mallory@example.com")
    };
    assert!(
        !store
            .create_invited_account(&mallory, "code")
            .await
            .unwrap(),
        "an invitation is for its email only"
    );
    assert!(store.get_account("usr_mallory").await.unwrap().is_none());
    assert!(store.create_invited_account(&bob, "code").await.unwrap());
    let bob_again = account("usr_bob2", "bob@example.com");
    assert!(
        !store
            .create_invited_account(&bob_again, "code")
            .await
            .unwrap()
    );
    assert_eq!(store.list_accounts().await.unwrap().len(), 2);

    store
        .create_project("pets", "spec", &ProjectFiles::default(), "usr_a", 1)
        .await
        .unwrap();
    let owned = SandboxRecord {
        owner: Some("usr_bob".into()),
        ..sandbox("sbx-owned", None)
    };
    store.create_sandbox(&owned, &[]).await.unwrap();
    assert_eq!(store.get_sandbox("sbx-owned").await.unwrap(), Some(owned));
    let mut entry = audited(7);
    entry.owner = Some("usr_bob".into());
    store.add_audit(&entry).await.unwrap();
    store.add_audit(&audited(8)).await.unwrap();
    let bobs = store
        .list_audit(&sbx_store::AuditQuery {
            owner: Some("usr_bob".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(bobs.iter().map(|e| e.at_ms).collect::<Vec<_>>(), [7]);
}

on_both_backends!(store_honours_the_contract, honours_the_contract);
async fn honours_the_contract(place: Place) {
    contract(&*place.open().await).await;
}

/// A sandbox's keys: made, listed, expired (a roll), revoked, touched,
/// and gone with their sandbox.
async fn keys_contract(store: &dyn Store) {
    store
        .create_project("pets", "spec", &ProjectFiles::default(), "usr_a", 1)
        .await
        .unwrap();
    store
        .create_sandbox(&sandbox("sbx-k", None), &[])
        .await
        .unwrap();
    let key = |id: &str, kind: KeyKind, permissions: KeyPermissions| KeyRecord {
        id: id.into(),
        sandbox_id: "sbx-k".into(),
        kind,
        name: Some(id.to_owned()),
        key_hash: format!("hash-{id}"),
        redacted: "rk_test_…abcd".to_owned(),
        permissions,
        created_at_ms: 5,
        last_used_at_ms: None,
        expires_at_ms: None,
        revoked_at_ms: None,
    };
    let restricted = key(
        "key_r",
        KeyKind::Restricted,
        KeyPermissions {
            read_only: true,
            operations: Some(vec!["listPets".to_owned()]),
        },
    );
    let publishable = key("key_p", KeyKind::Publishable, KeyPermissions::default());
    store.create_key(&restricted).await.unwrap();
    store.create_key(&publishable).await.unwrap();
    assert!(
        store.create_key(&restricted).await.is_err(),
        "ids and hashes are unique"
    );
    assert_eq!(
        store.list_keys("sbx-k").await.unwrap(),
        vec![restricted.clone(), publishable.clone()],
        "oldest first, in the order made"
    );
    assert!(store.expire_key("sbx-k", "key_r", 100).await.unwrap());
    assert!(store.expire_key("sbx-k", "key_r", 200).await.unwrap());
    assert!(!store.expire_key("sbx-other", "key_r", 50).await.unwrap());
    store
        .touch_keys(&[("hash-key_p".into(), 70)])
        .await
        .unwrap();
    assert!(store.revoke_key("sbx-k", "key_p", 80).await.unwrap());
    assert!(!store.revoke_key("sbx-k", "key_p", 81).await.unwrap());
    let listed = store.list_keys("sbx-k").await.unwrap();
    assert_eq!(listed[1].last_used_at_ms, Some(70));
    assert_eq!(listed[1].revoked_at_ms, Some(80));
    assert_eq!(
        listed[0].expires_at_ms,
        Some(100),
        "an expiry only comes closer"
    );
    assert_eq!(
        store
            .live_keys()
            .await
            .unwrap()
            .iter()
            .map(|k| k.id.to_string())
            .collect::<Vec<_>>(),
        ["key_r"]
    );
    store
        .touch_sandboxes(&[("sbx-k".into(), 900)])
        .await
        .unwrap();
    store
        .touch_sandboxes(&[("sbx-k".into(), 800)])
        .await
        .unwrap();
    let touched = store.get_sandbox("sbx-k").await.unwrap().unwrap();
    assert_eq!(
        touched.last_active_at_ms,
        Some(900),
        "activity never goes back"
    );
    assert!(store.delete_sandbox("sbx-k").await.unwrap());
    assert!(store.list_keys("sbx-k").await.unwrap().is_empty());
}

on_both_backends!(store_honours_the_keys_contract, honours_the_keys_contract);
async fn honours_the_keys_contract(place: Place) {
    keys_contract(&*place.open().await).await;
}

on_both_backends!(
    store_honours_the_accounts_contract,
    honours_the_accounts_contract
);
async fn honours_the_accounts_contract(place: Place) {
    accounts_contract(&*place.open().await).await;
}

on_both_backends!(data_survives_reopening, survives_reopening);
async fn survives_reopening(place: Place) {
    {
        let store = place.open().await;
        store
            .create_project("pets", "spec", &ProjectFiles::default(), "usr_a", 1)
            .await
            .unwrap();
        store
            .create_sandbox(&sandbox("sbx-a", None), &[])
            .await
            .unwrap();
    }
    let store = place.open().await;
    assert_eq!(store.list_sandboxes().await.unwrap().len(), 1);
    assert_eq!(store.list_projects().await.unwrap()[0].name, "pets");
}

fn logged(sandbox_id: &str, n: i64) -> LogRecord {
    LogRecord {
        seq: 0,
        sandbox_id: sandbox_id.into(),
        request_id: format!("req-{n}").into(),
        at_ms: n,
        method: "GET".to_owned(),
        path: "/v1/pets".to_owned(),
        query: None,
        operation: None,
        status: 200,
        latency_us: 1,
        scenario: None,
        chaos: None,
        replayed: false,
        request_headers: serde_json::json!({}),
        request_body: String::new(),
        response_headers: serde_json::json!({}),
        response_body: String::new(),
        trace: serde_json::json!([]),
        sandbox_at_ms: None,
        trace_id: None,
    }
}

/// The request ids a sandbox's log holds, oldest first.
async fn log_of(store: &dyn Store, sandbox_id: &str) -> Vec<String> {
    let query = LogQuery {
        limit: 1000,
        ..LogQuery::default()
    };
    let mut ids: Vec<String> = store
        .list_logs(sandbox_id, &query)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id.to_string())
        .collect();
    ids.reverse();
    ids
}

fn ids(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
    range.map(|n| format!("req-{n}")).collect()
}

on_both_backends!(
    each_sandbox_log_keeps_its_newest_entries_across_batches_prunes_and_restarts,
    log_retention
);
async fn log_retention(place: Place) {
    let store = place.open().await;
    store
        .create_project("pets", "spec", &ProjectFiles::default(), "usr_a", 1)
        .await
        .unwrap();
    store
        .create_sandbox(&sandbox("sbx-a", None), &[])
        .await
        .unwrap();
    store
        .create_sandbox(&sandbox("sbx-b", None), &[])
        .await
        .unwrap();
    let save = |logs: Vec<LogRecord>| {
        let store = store.clone();
        async move { store.save_logs(&logs, 5).await.unwrap() }
    };

    // Batches mixing sandboxes, one larger than what is kept.
    save((1..=3).map(|n| logged("sbx-a", n)).collect()).await;
    save(
        (4..=10)
            .map(|n| logged("sbx-a", n))
            .chain([logged("sbx-b", 100)])
            .collect(),
    )
    .await;
    assert_eq!(log_of(&*store, "sbx-a").await, ids(6..=10));
    assert_eq!(log_of(&*store, "sbx-b").await, ids(100..=100));

    // Pruning by age leaves fewer than kept; the next writes count from there.
    assert_eq!(store.prune_logs(9).await.unwrap(), 3);
    save(vec![logged("sbx-a", 11)]).await;
    assert_eq!(log_of(&*store, "sbx-a").await, ids(9..=11));
    save((12..=14).map(|n| logged("sbx-a", n)).collect()).await;
    assert_eq!(log_of(&*store, "sbx-a").await, ids(10..=14));

    // Another process counts what the database holds.
    drop(store);
    let store = place.open().await;
    store.save_logs(&[logged("sbx-a", 15)], 5).await.unwrap();
    assert_eq!(log_of(&*store, "sbx-a").await, ids(11..=15));
    store.save_logs(&[logged("sbx-b", 101)], 5).await.unwrap();
    assert_eq!(log_of(&*store, "sbx-b").await, ids(100..=101));

    // Two servers on one database write one sandbox's log at once: it
    // holds exactly the latest five, whoever wrote them.
    let other = place.open().await;
    let write = |store: Arc<dyn Store>, first: i64| async move {
        for n in first..first + 20 {
            store.save_logs(&[logged("sbx-b", n)], 5).await.unwrap();
        }
    };
    tokio::join!(write(store.clone(), 200), write(other.clone(), 300));
    let held = log_of(&*store, "sbx-b").await;
    assert_eq!(held.len(), 5, "{held:?}");
    store.save_logs(&[logged("sbx-b", 400)], 5).await.unwrap();
    assert_eq!(log_of(&*other, "sbx-b").await.len(), 5);
}

fn audited(at_ms: i64) -> sbx_store::AuditRecord {
    sbx_store::AuditRecord {
        seq: 0,
        at_ms,
        actor: "anonymous".to_owned(),
        action: "DELETE /sandboxes/{id}".to_owned(),
        target: format!("/api/v1/sandboxes/sbx-{at_ms}"),
        status: 401,
        request_id: None,
        client: Some("127.0.0.1".to_owned()),
        user_agent: None,
        resource: None,
        detail: None,
        owner: None,
    }
}

on_both_backends!(audit_is_pruned_by_age_and_by_count, audit_retention);
/// Audit retention: entries older than the horizon go, and so do all but
/// the latest `keep`; the newest are the ones kept.
async fn audit_retention(place: Place) {
    let store = place.open().await;
    for at_ms in 1..=10 {
        store.add_audit(&audited(at_ms)).await.unwrap();
    }
    let query = sbx_store::AuditQuery {
        limit: 100,
        ..Default::default()
    };
    let times = |entries: Vec<sbx_store::AuditRecord>| {
        entries.into_iter().map(|e| e.at_ms).collect::<Vec<_>>()
    };
    assert_eq!(store.prune_audit(3, 1_000).await.unwrap(), 2);
    assert_eq!(
        times(store.list_audit(&query).await.unwrap()),
        [10, 9, 8, 7, 6, 5, 4, 3]
    );
    assert_eq!(store.prune_audit(0, 5).await.unwrap(), 3);
    assert_eq!(
        times(store.list_audit(&query).await.unwrap()),
        [10, 9, 8, 7, 6]
    );
    assert_eq!(store.prune_audit(0, 5).await.unwrap(), 0);
}

on_both_backends!(a_corrupt_row_is_an_error_that_names_it, corrupt_rows);
/// A row whose JSON or enum column does not decode is an error naming the
/// table, the row and the column: never read as a default, never a panic.
async fn corrupt_rows(place: Place) {
    let store = place.open().await;
    store
        .create_project("pets", "{}", &ProjectFiles::default(), "usr_a", 1)
        .await
        .unwrap();
    store
        .create_sandbox(&sandbox("sbx-a", None), &[])
        .await
        .unwrap();
    for (column, spoiled) in [
        ("env", "{not json"),
        ("webhook_schedule", "hourly"),
        ("auth", "sometimes"),
    ] {
        place
            .execute(
                &format!("UPDATE sandboxes SET {column} = $1 WHERE id = 'sbx-a'"),
                spoiled,
            )
            .await;
        let error = store.get_sandbox("sbx-a").await.unwrap_err();
        assert!(
            matches!(&error, StoreError::Corrupt { table: "sandboxes", column: c, .. } if *c == column),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("sbx-a") && message.contains(column),
            "{message}"
        );
        assert!(store.list_sandboxes().await.is_err(), "listing fails too");
        place
            .execute(
                "UPDATE sandboxes SET env = '{}', webhook_schedule = 'standard', auth = $1 WHERE id = 'sbx-a'",
                "spec",
            )
            .await;
    }
    assert!(
        store.get_sandbox("sbx-a").await.unwrap().is_some(),
        "mended, it reads"
    );
}

on_both_backends!(isolation_is_kept_with_its_token_sealed, isolation);
/// A namespace-isolated sandbox keeps where its namespace stands, and its
/// instance token, which is stored sealed and survives state changes.
async fn isolation(place: Place) {
    let store = place.open().await;
    store
        .create_project("pets", "{}", &ProjectFiles::default(), "usr_a", 1)
        .await
        .unwrap();
    let provisioning = sbx_store::Isolation {
        state: sbx_store::IsolationState::Provisioning,
        message: None,
        changed_at_ms: 5,
        instance_token: "instance-token-0123456789abcdef".to_owned(),
    };
    let isolated = SandboxRecord {
        isolation: Some(provisioning.clone()),
        ..sandbox("sbx-iso", None)
    };
    store.create_sandbox(&isolated, &[]).await.unwrap();
    store
        .create_sandbox(&sandbox("sbx-shared", None), &[])
        .await
        .unwrap();
    let read = store.get_sandbox("sbx-iso").await.unwrap().unwrap();
    assert_eq!(read.isolation.as_ref(), Some(&provisioning));
    assert_eq!(
        store
            .get_sandbox("sbx-shared")
            .await
            .unwrap()
            .unwrap()
            .isolation,
        None
    );
    place
        .execute(
            "UPDATE sandboxes SET label = $1 WHERE isolation_token LIKE 'sealed:v1:%' AND isolation_token NOT LIKE '%instance-token%'",
            "sealed",
        )
        .await;
    assert_eq!(
        store
            .get_sandbox("sbx-iso")
            .await
            .unwrap()
            .unwrap()
            .label
            .as_deref(),
        Some("sealed"),
        "the token is stored sealed"
    );

    let ready = sbx_store::Isolation {
        state: sbx_store::IsolationState::Ready,
        message: Some("its sbx answers".to_owned()),
        changed_at_ms: 9,
        instance_token: String::new(),
    };
    assert!(
        store
            .set_sandbox_isolation("sbx-iso", &ready)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_sandbox_isolation("sbx-gone", &ready)
            .await
            .unwrap()
    );
    let read = store.get_sandbox("sbx-iso").await.unwrap().unwrap();
    assert_eq!(
        read.isolation,
        Some(sbx_store::Isolation {
            instance_token: provisioning.instance_token.clone(),
            ..ready
        }),
        "a state change keeps the token"
    );
    assert_eq!(
        store.reseal_secrets().await.unwrap(),
        0,
        "sealed under the current key"
    );
}

on_both_backends!(
    deliveries_are_claimed_by_one_server_at_a_time,
    delivery_claims
);
/// Project "pets" with sandbox `id` of it.
async fn pets_sandbox(store: &dyn Store, id: &str) {
    store
        .create_project("pets", "spec", &ProjectFiles::default(), "usr_a", 1)
        .await
        .unwrap();
    store.create_sandbox(&sandbox(id, None), &[]).await.unwrap();
}

/// An endpoint `id` of sandbox `sandbox` taking every event.
fn endpoint(id: &str, sandbox: &str) -> EndpointRecord {
    EndpointRecord {
        id: id.into(),
        sandbox_id: sandbox.into(),
        url: "https://example.com/hook".to_owned(),
        events: vec!["*".to_owned()],
        description: None,
        secret: "whsec_test".to_owned(),
        previous_secret: None,
        previous_secret_expires_ms: None,
        disabled_reason: None,
        failures_in_row: 0,
        created_at_ms: 1,
        faults: None,
    }
}

/// Servers sharing a database claim due deliveries: each goes to one of
/// them; a recorded attempt ends its claim; a server that dies leaves its
/// claims to run out and be taken again.
async fn delivery_claims(place: Place) {
    let store = place.open().await;
    let other = place.open().await;
    store
        .create_project("pets", "spec", &ProjectFiles::default(), "usr_a", 1)
        .await
        .unwrap();
    store
        .create_sandbox(&sandbox("sbx-w", None), &[])
        .await
        .unwrap();
    store
        .create_endpoint(&endpoint("ep_1", "sbx-w"))
        .await
        .unwrap();
    for n in 0..40 {
        store
            .emit_event("sbx-w", "pet.created", "{}", 10 + n, None)
            .await
            .unwrap();
    }
    let claim = |claimer: &str, now_ms: i64| DeliveryClaim {
        claimer: claimer.to_owned(),
        now_ms,
        until_ms: now_ms + 60_000,
    };
    let (claim_a, claim_b) = (claim("rep_a", 0), claim("rep_b", 0));
    let (a, b) = tokio::join!(
        store.claim_deliveries("sbx-w", 1_000, 25, &claim_a),
        other.claim_deliveries("sbx-w", 1_000, 25, &claim_b),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    let mut ids: Vec<i64> = a.iter().chain(&b).map(|d| d.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        40,
        "each delivery is claimed once: {} + {}",
        a.len(),
        b.len()
    );
    assert!(
        store
            .claim_deliveries("sbx-w", 1_000, 100, &claim("rep_c", 1))
            .await
            .unwrap()
            .is_empty(),
        "claimed deliveries are nobody else's"
    );
    // A failed attempt, due again at sandbox time 500: its claim is over.
    let tried = &a[0];
    store
        .record_attempt(&AttemptRecord {
            delivery_id: tried.id,
            endpoint_id: "ep_1".into(),
            attempt: 1,
            at_ms: 11,
            request_headers: "{}".to_owned(),
            status: Some(500),
            body_excerpt: None,
            latency_ms: 3,
            error: None,
            state: "pending",
            next_attempt_ms: Some(500),
            disable_endpoint: None,
        })
        .await
        .unwrap();
    let again = store
        .claim_deliveries("sbx-w", 1_000, 100, &claim("rep_c", 2))
        .await
        .unwrap();
    assert_eq!(again.iter().map(|d| d.id).collect::<Vec<_>>(), [tried.id]);
    assert_eq!(again[0].attempts, 1);
    // rep_a and rep_b died: once their claims run out, they are taken
    // again (and rep_c's own are still its).
    let taken = store
        .claim_deliveries("sbx-w", 1_000, 100, &claim("rep_c", 60_001))
        .await
        .unwrap();
    assert_eq!(taken.len(), 40);
}

on_both_backends!(
    a_server_taking_the_database_frees_the_claims_of_the_one_before,
    claims_freed_on_takeover
);
/// A server killed mid-delivery leaves its claims behind; the server that
/// takes the database after it (on SQLite: the same file, restarted) sends
/// those deliveries at once, not when the dead server's claims run out.
async fn claims_freed_on_takeover(place: Place) {
    let first = place.open_as("rep_first").await;
    let held = first.try_hold(&holder("rep_first")).await.unwrap().unwrap();
    pets_sandbox(&*first, "sbx-k").await;
    first
        .create_endpoint(&endpoint("ep_k", "sbx-k"))
        .await
        .unwrap();
    for n in 0..3 {
        first
            .emit_event("sbx-k", "pet.created", "{}", 10 + n, None)
            .await
            .unwrap();
    }
    let claimed = first
        .claim_deliveries("sbx-k", 1_000, 10, &claim("rep_first"))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 3);
    // Killed: nothing let go. On PostgreSQL its lease runs out.
    std::mem::forget(held);
    drop(first);
    if let Place::Postgres(_) = place {
        place
            .execute(
                "UPDATE database_holder SET expires_at = clock_timestamp() - interval '1 ms' WHERE replica = $1",
                "rep_first",
            )
            .await;
    }
    let second = place.open_as("rep_second").await;
    let early = DeliveryClaim {
        claimer: "rep_second".to_owned(),
        now_ms: 2,
        until_ms: 60_002,
    };
    let before = second.claim_deliveries("sbx-k", 1_000, 10, &early).await;
    match place {
        Place::Sqlite(_) => assert!(
            before.unwrap().is_empty(),
            "the first server's claims hold until the file is taken"
        ),
        Place::Postgres(_) => assert!(
            matches!(before, Err(StoreError::Fenced(_))),
            "a server not holding the database claims nothing: {before:?}"
        ),
    }
    let _held = second
        .try_hold(&holder("rep_second"))
        .await
        .unwrap()
        .unwrap();
    let taken = second
        .claim_deliveries("sbx-k", 1_000, 10, &early)
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|d| d.id).collect::<Vec<_>>(),
        claimed.iter().map(|d| d.id).collect::<Vec<_>>(),
        "the claims of the server gone are free as soon as the database is taken"
    );
}

fn holder(replica: &str) -> sbx_store::Holder {
    sbx_store::Holder {
        replica: replica.to_owned(),
        address: format!("http://{replica}.internal:8080"),
        since_ms: 1,
        epoch: 0,
    }
}

/// Whether a write of server `store` went through, or the fence refused it.
async fn writes(store: &PgStore, project: &str) -> Result<(), String> {
    match store
        .create_project(project, "spec", &ProjectFiles::default(), "usr_a", 1)
        .await
    {
        Ok(_) => Ok(()),
        Err(StoreError::Fenced(why)) => Err(why),
        Err(other) => panic!("a write fails only for the fence here: {other}"),
    }
}

/// A write of server `replica` (as its connections name it) on database
/// `url`, its transaction left open — as by a server paused mid-write.
async fn write_left_open(url: &str, replica: &str) -> sqlx::PgConnection {
    use sqlx::{Connection, postgres::PgConnectOptions};
    let options: PgConnectOptions = url.parse().unwrap();
    let options = options
        .application_name(&format!("smartsandbox {replica}"))
        .options([("sbx.replica", replica)]);
    let mut connection = sqlx::PgConnection::connect_with(&options).await.unwrap();
    sqlx::query("BEGIN").execute(&mut connection).await.unwrap();
    sqlx::query("DELETE FROM projects WHERE name = 'by-first'")
        .execute(&mut connection)
        .await
        .unwrap();
    connection
}

/// One server holds a PostgreSQL database at a time, under a lease; the
/// database refuses the writes of every other server, and of a former
/// holder once another took over after its lease ran out (a holder paused
/// or cut off): it can never write again, and its renewal says why.
#[tokio::test]
async fn postgres_fences_every_server_but_the_holder() {
    let Some(Place::Postgres(url)) = Place::postgres().await else {
        return;
    };
    let first = PgStore::open_url_as(&url, "rep_first").await.unwrap();
    let second = PgStore::open_url_as(&url, "rep_second").await.unwrap();
    let why = writes(&first, "before").await.unwrap_err();
    assert!(
        why.contains("rep_first does not hold the database"),
        "{why}"
    );

    let mut held = first.try_hold(&holder("rep_first")).await.unwrap().unwrap();
    assert_eq!(held.epoch(), 1);
    assert_eq!(held.lease(), Some(std::time::Duration::from_secs(3)));
    writes(&first, "by-first").await.unwrap();
    assert!(
        second
            .try_hold(&holder("rep_second"))
            .await
            .unwrap()
            .is_none()
    );
    let why = writes(&second, "by-second").await.unwrap_err();
    assert!(why.contains("(rep_first does)"), "{why}");
    held.renew().await.unwrap();
    let recorded = second.holder().await.unwrap().unwrap();
    assert_eq!(
        (recorded.replica.as_str(), recorded.epoch),
        ("rep_first", 1)
    );

    // The first is paused past its lease in the middle of a write: its
    // transaction holds the fence's lock, and the database's clock runs its
    // lease out.
    let mut paused_write = write_left_open(&url, "rep_first").await;
    // Another database on the same server, whose holder happens to be
    // named alike, is none of the takeover's business.
    let Some(Place::Postgres(other)) = Place::postgres().await else {
        unreachable!("the server answered a moment ago")
    };
    let other_store = PgStore::open_url_as(&other, "rep_first").await.unwrap();
    let _other_hold = other_store
        .try_hold(&holder("rep_first"))
        .await
        .unwrap()
        .unwrap();
    let mut elsewhere = write_left_open(&other, "rep_first").await;
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE database_holder SET expires_at = clock_timestamp() - interval '1 ms'")
        .execute(&raw)
        .await
        .unwrap();
    let taken = second
        .try_hold(&holder("rep_second"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.epoch(), 2);
    // The paused write was ended, not committed.
    assert!(
        sqlx::query("COMMIT")
            .execute(&mut paused_write)
            .await
            .is_err()
    );
    sqlx::query("COMMIT").execute(&mut elsewhere).await.unwrap();
    let why = writes(&first, "after-takeover").await.unwrap_err();
    assert!(why.contains("(rep_second does)"), "{why}");
    match held.renew().await {
        Err(StoreError::Fenced(why)) => assert!(why.contains("took the database"), "{why}"),
        other => panic!("the former holder's renewal is refused: {other:?}"),
    }
    writes(&second, "by-second").await.unwrap();
    // A connection that names no server (an operator's psql) is not fenced.
    sqlx::query("DELETE FROM projects WHERE name = 'by-first'")
        .execute(&raw)
        .await
        .unwrap();
    let names: Vec<String> = second
        .list_projects()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(names, ["by-second"]);

    // A graceful stop lets the database go at once.
    taken.release().await;
    let third = PgStore::open_url_as(&url, "rep_third").await.unwrap();
    let again = third.try_hold(&holder("rep_third")).await.unwrap().unwrap();
    assert_eq!(again.epoch(), 3);
    writes(&third, "by-third").await.unwrap();
}

/// A claim by `claimer` for a minute, at time 1.
fn claim(claimer: &str) -> DeliveryClaim {
    DeliveryClaim {
        claimer: claimer.to_owned(),
        now_ms: 1,
        until_ms: 60_001,
    }
}

/// Emits an event of `sandbox` through `store` and claims its due
/// deliveries for `claimer`: how many.
async fn emit_and_claim(store: &PgStore, sandbox: &str, claimer: &str) -> usize {
    store
        .emit_event(sandbox, "pet.created", "{}", 10, None)
        .await
        .unwrap();
    store
        .claim_deliveries(sandbox, 1_000, 10, &claim(claimer))
        .await
        .unwrap()
        .len()
}

/// Server `replica`'s store on database `url`, with the one secrets key
/// servers sharing a database share.
async fn server_store(url: &str, replica: &str) -> PgStore {
    let key = sbx_store::sealed::parse_key("c2J4LXRlc3Qtc2VjcmV0cy1rZXktMzItYnl0ZXMhISE=").unwrap();
    PgStore::open_url_as(url, replica)
        .await
        .unwrap()
        .with_sealer(std::sync::Arc::new(sbx_store::Sealer::new(&key, &[])))
}

/// A member serves sandboxes of its own and writes for them while its
/// lease lasts; once it ran out (a member paused or cut off), the holder's
/// sweep waits out its writes in flight, takes its sandboxes back under a
/// new epoch, and the member never writes again. A member leaving hands
/// its sandboxes back at once.
#[tokio::test]
async fn postgres_members_write_until_swept() {
    let Some(Place::Postgres(url)) = Place::postgres().await else {
        return;
    };
    let holding = server_store(&url, "rep_h").await;
    let _held = holding.try_hold(&holder("rep_h")).await.unwrap().unwrap();
    pets_sandbox(&holding, "sbx-m").await;
    let serving = server_store(&url, "rep_m").await;
    // A member follows the holder's changes as they commit.
    let mut changes = serving.watch_changes().await.unwrap().unwrap();
    holding
        .add_revision("pets", "spec 2", &ProjectFiles::default(), "usr_a", 2)
        .await
        .unwrap();
    holding
        .create_sandbox(&sandbox("sbx-gone", None), &[])
        .await
        .unwrap();
    assert!(holding.delete_sandbox("sbx-gone").await.unwrap());
    assert_eq!(
        changes.next().await,
        sbx_store::Change::Revision("pets".to_owned())
    );
    assert_eq!(
        changes.next().await,
        sbx_store::Change::SandboxGone("sbx-gone".to_owned())
    );
    let why = writes(&serving, "before-joining").await.unwrap_err();
    assert!(why.contains("serves no sandboxes of its own"), "{why}");

    let member = sbx_store::Member {
        replica: "rep_m".to_owned(),
        address: "http://rep_m.internal:8080".to_owned(),
    };
    let mut lease = serving.join(&member).await.unwrap().unwrap();
    lease.renew().await.unwrap();
    writes(&serving, "by-member").await.unwrap();
    assert_eq!(
        holding.members().await.unwrap(),
        std::slice::from_ref(&member)
    );
    assert_eq!(
        holding
            .hand_over("sbx-m", None, Some("rep_m"))
            .await
            .unwrap(),
        Some(1)
    );
    let served = holding.served_by("sbx-m").await.unwrap().unwrap();
    assert_eq!((served.member.as_ref(), served.epoch), (Some(&member), 1));
    assert_eq!(
        holding.served_by_members().await.unwrap(),
        [("sbx-m".to_owned(), served)]
    );
    assert!(holding.served_by("sbx-none").await.unwrap().is_none());
    assert_eq!(
        holding
            .hand_over("sbx-none", None, Some("rep_m"))
            .await
            .unwrap(),
        None
    );
    // Nothing to sweep while its lease lasts.
    assert!(holding.sweep_members().await.unwrap().is_empty());
    // It claims a delivery of its sandbox to send.
    serving
        .create_endpoint(&endpoint("ep_m", "sbx-m"))
        .await
        .unwrap();
    assert_eq!(emit_and_claim(&serving, "sbx-m", "rep_m").await, 1);

    // Paused mid-write past its lease.
    let mut paused_write = write_left_open(&url, "rep_m").await;
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE replicas SET expires_at = clock_timestamp() - interval '1 ms'")
        .execute(&raw)
        .await
        .unwrap();
    assert!(holding.members().await.unwrap().is_empty());
    assert_eq!(holding.sweep_members().await.unwrap(), ["sbx-m"]);
    assert!(
        sqlx::query("COMMIT")
            .execute(&mut paused_write)
            .await
            .is_err()
    );
    let why = writes(&serving, "after-sweep").await.unwrap_err();
    assert!(
        why.contains("rep_m does not hold the database (rep_h does)"),
        "{why}"
    );
    match lease.renew().await {
        Err(StoreError::Fenced(why)) => assert!(why.contains("swept rep_m"), "{why}"),
        other => panic!("a swept member's renewal is refused: {other:?}"),
    }
    let served = holding.served_by("sbx-m").await.unwrap().unwrap();
    assert_eq!((served.member, served.epoch), (None, 2));
    // Its claims are free at once: it can record no attempt any more.
    let taken = holding
        .claim_deliveries("sbx-m", 1_000, 10, &claim("rep_h"))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1, "the swept member's claim was released");

    // A member leaving hands its sandboxes back at the next sweep.
    let next = sbx_store::Member {
        replica: "rep_n".to_owned(),
        address: "http://rep_n.internal:8080".to_owned(),
    };
    let other = PgStore::open_url_as(&url, "rep_n").await.unwrap();
    let lease = other.join(&next).await.unwrap().unwrap();
    assert_eq!(
        holding
            .hand_over("sbx-m", None, Some("rep_n"))
            .await
            .unwrap(),
        Some(3)
    );
    lease.leave().await;
    assert!(holding.members().await.unwrap().is_empty());
    assert_eq!(holding.sweep_members().await.unwrap(), ["sbx-m"]);
    let served = holding.served_by("sbx-m").await.unwrap().unwrap();
    assert_eq!((served.member, served.epoch), (None, 4));
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM replicas")
        .fetch_one(&raw)
        .await
        .unwrap();
    assert_eq!(rows, 0, "the sweep removed the member that left");
}

/// A member writes only for the sandboxes it serves. A live sandbox moves
/// from the server serving it to another (the holder, or a live member):
/// its old server can no longer write for it, its new one can, its
/// delivery claims are free at once, and every server hears of the move.
#[tokio::test]
async fn postgres_sandboxes_move_between_live_servers() {
    let Some(Place::Postgres(url)) = Place::postgres().await else {
        return;
    };
    let holding = server_store(&url, "rep_h").await;
    let _held = holding.try_hold(&holder("rep_h")).await.unwrap().unwrap();
    pets_sandbox(&holding, "sbx-a").await;
    holding
        .create_sandbox(&sandbox("sbx-b", None), &[])
        .await
        .unwrap();
    holding
        .create_endpoint(&endpoint("ep_a", "sbx-a"))
        .await
        .unwrap();
    let (mut joined, mut stores) = (Vec::new(), Vec::new());
    for replica in ["rep_m", "rep_n"] {
        let store = server_store(&url, replica).await;
        let member = sbx_store::Member {
            replica: replica.to_owned(),
            address: format!("http://{replica}.internal:8080"),
        };
        joined.push(store.join(&member).await.unwrap().unwrap());
        stores.push(store);
    }
    let (m, n) = (&stores[0], &stores[1]);
    let mut changes = holding.watch_changes().await.unwrap().unwrap();
    let endpoint_write = |store: &PgStore, id: &str, sandbox: &str| {
        let (store, record) = (store.clone(), endpoint(id, sandbox));
        async move { store.create_endpoint(&record).await }
    };

    // Handed to rep_m: it writes for sbx-a, not for the holder's sbx-b.
    assert_eq!(
        holding
            .hand_over("sbx-a", None, Some("rep_m"))
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        changes.next().await,
        sbx_store::Change::SandboxMoved("sbx-a".to_owned())
    );
    endpoint_write(m, "ep_m1", "sbx-a").await.unwrap();
    match endpoint_write(m, "ep_m2", "sbx-b").await {
        Err(StoreError::Fenced(why)) => {
            assert!(why.contains("rep_m does not serve sandbox sbx-b"), "{why}")
        }
        other => panic!("a member's write for another's sandbox is refused: {other:?}"),
    }
    // A group commit is one statement over many sandboxes' rows: one of
    // another's refuses it whole, and a row of another's can be neither
    // changed (an upsert's update) nor removed.
    let records = |sandbox: &str, id: &str, version| ChangeSet {
        sandbox_id: sandbox.into(),
        rows: vec![row(id, Some("{}"), version)],
        ..ChangeSet::default()
    };
    holding
        .save_changes(&[records("sbx-b", "held", 1)])
        .await
        .unwrap();
    for refused in [
        m.save_changes(&[records("sbx-a", "own", 1), records("sbx-b", "other", 1)])
            .await,
        m.save_changes(&[records("sbx-b", "held", 2)]).await,
        m.clear_resources("sbx-b", 1).await,
    ] {
        match refused {
            Err(StoreError::Fenced(why)) => {
                assert!(why.contains("rep_m does not serve sandbox sbx-b"), "{why}")
            }
            other => panic!("a member's write for another's sandbox is refused: {other:?}"),
        }
    }
    assert!(holding.load_resources("sbx-a").await.unwrap().is_empty());
    assert_eq!(
        holding.load_resources("sbx-b").await.unwrap(),
        [row("held", Some("{}"), 1)]
    );
    m.save_changes(&[records("sbx-a", "own", 1)]).await.unwrap();
    assert_eq!(
        holding.load_resources("sbx-a").await.unwrap(),
        [row("own", Some("{}"), 1)]
    );
    let mut counts = holding.sandboxes_per_server().await.unwrap();
    counts.sort();
    assert_eq!(counts, [(None, 1), (Some("rep_m".to_owned()), 1)]);
    assert_eq!(
        emit_and_claim(m, "sbx-a", "rep_m").await,
        2,
        "one delivery per endpoint"
    );

    // Only its server moves it, and only to a live server.
    assert_eq!(
        n.hand_over("sbx-a", Some("rep_n"), None).await.unwrap(),
        None
    );
    assert_eq!(
        m.hand_over("sbx-a", Some("rep_m"), Some("rep_gone"))
            .await
            .unwrap(),
        None
    );
    // rep_m hands it to rep_n: rep_m writes for it no more, rep_n does,
    // and rep_m's claims are rep_n's to take at once.
    assert_eq!(
        m.hand_over("sbx-a", Some("rep_m"), Some("rep_n"))
            .await
            .unwrap(),
        Some(2)
    );
    assert_eq!(
        changes.next().await,
        sbx_store::Change::SandboxMoved("sbx-a".to_owned())
    );
    assert!(matches!(
        endpoint_write(m, "ep_m3", "sbx-a").await,
        Err(StoreError::Fenced(_))
    ));
    assert!(matches!(
        m.emit_event("sbx-a", "pet.sold", "{}", 11, None).await,
        Err(StoreError::Fenced(_))
    ));
    // Its request log of requests it answered before is still written.
    m.save_logs(&[logged("sbx-a", 1)], 10).await.unwrap();
    endpoint_write(n, "ep_n1", "sbx-a").await.unwrap();
    let taken = n
        .claim_deliveries("sbx-a", 1_000, 10, &claim("rep_n"))
        .await
        .unwrap();
    assert_eq!(taken.len(), 2, "rep_m's claims were freed by the move");
    // Back to the holder; a member deleting its own sandbox deletes its
    // rows with it.
    assert_eq!(
        n.hand_over("sbx-a", Some("rep_n"), None).await.unwrap(),
        Some(3)
    );
    let served = holding.served_by("sbx-a").await.unwrap().unwrap();
    assert_eq!((served.member, served.epoch), (None, 3));
    assert_eq!(
        holding
            .hand_over("sbx-b", None, Some("rep_n"))
            .await
            .unwrap(),
        Some(1)
    );
    assert!(n.delete_sandbox("sbx-b").await.unwrap());
    assert!(matches!(
        m.delete_sandbox("sbx-a").await,
        Err(StoreError::Fenced(_))
    ));
    // A stopping member is given none, and is no longer listed.
    joined[1].drain().await.unwrap();
    assert_eq!(
        holding
            .hand_over("sbx-a", None, Some("rep_n"))
            .await
            .unwrap(),
        None
    );
    let listed: Vec<String> = holding
        .members()
        .await
        .unwrap()
        .into_iter()
        .map(|member| member.replica)
        .collect();
    assert_eq!(listed, ["rep_m"]);
    assert!(holding.delete_sandbox("sbx-a").await.unwrap());
}

/// Every table but the holder's own is fenced: a migration that adds a
/// table must fence it too (`sbx_fence()`).
#[tokio::test]
async fn postgres_fences_every_table() {
    let Some(Place::Postgres(url)) = Place::postgres().await else {
        return;
    };
    PgStore::open_url(&url).await.unwrap();
    let raw = sqlx::PgPool::connect(&url).await.unwrap();
    let unfenced: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables t WHERE schemaname = current_schema()
           AND tablename NOT IN ('database_holder', 'replicas', '_sqlx_migrations')
           AND NOT EXISTS (SELECT 1 FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid
                           WHERE c.relname = t.tablename AND g.tgname = 'fence')",
    )
    .fetch_all(&raw)
    .await
    .unwrap();
    assert!(
        unfenced.is_empty(),
        "tables without the fence: {unfenced:?}"
    );
}

/// SQLite has one server: the database is always its own, for good.
#[tokio::test]
async fn sqlite_is_always_held_by_its_one_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open_dir(dir.path()).await.unwrap();
    let mut held = store.try_hold(&holder("rep_only")).await.unwrap().unwrap();
    held.renew().await.unwrap();
    assert_eq!(held.lease(), None);
    assert!(store.holder().await.unwrap().is_none());
    // No members: every sandbox is its own.
    let member = sbx_store::Member {
        replica: "rep_m".to_owned(),
        address: "http://rep_m.internal:8080".to_owned(),
    };
    assert!(store.join(&member).await.unwrap().is_none());
    assert!(store.watch_changes().await.unwrap().is_none());
    pets_sandbox(&store, "sbx-a").await;
    let served = store.served_by("sbx-a").await.unwrap().unwrap();
    assert_eq!(served.member, None);
    assert!(store.hand_over("sbx-a", None, Some("rep_m")).await.is_err());
    assert_eq!(store.hand_over("sbx-a", None, None).await.unwrap(), Some(0));
    assert_eq!(
        store.sandboxes_per_server().await.unwrap(),
        [(None, 1)],
        "every sandbox is the one server's"
    );
    assert!(store.sweep_members().await.unwrap().is_empty());
}

/// Servers save the requests they counted, per day: an account's are
/// added up over every server, a sandbox's highest count stands (one
/// server serves it at a time; the one it left may save late), for
/// accounts and sandboxes since removed too; old days are pruned.
async fn request_counts(place: Place) {
    let (one, other) = (place.open().await, place.open().await);
    let counted = |accounts: &[(&str, u64)], sandboxes: &[(&str, u64)]| sbx_store::DayCounts {
        accounts: accounts.iter().map(|(id, n)| ((*id).into(), *n)).collect(),
        sandboxes: sandboxes.iter().map(|(id, n)| ((*id).into(), *n)).collect(),
    };
    fn sorted<K: ToString>(counts: Vec<(K, u64)>) -> Vec<(String, u64)> {
        let mut counts: Vec<(String, u64)> = counts
            .into_iter()
            .map(|(id, n)| (id.to_string(), n))
            .collect();
        counts.sort();
        counts
    }
    let owned = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(id, n)| (id.to_string(), *n)).collect()
    };
    let day = 20_000;
    let totals = one
        .save_requests(day, &counted(&[("usr_a", 3)], &[("sbx-a", 3)]))
        .await
        .unwrap();
    assert_eq!(sorted(totals), owned(&[("usr_a", 3)]));
    let totals = other
        .save_requests(
            day,
            &counted(&[("usr_a", 2), ("usr_b", 5)], &[("sbx-a", 5), ("sbx-b", 5)]),
        )
        .await
        .unwrap();
    assert_eq!(
        sorted(totals),
        owned(&[("usr_a", 5), ("usr_b", 5)]),
        "the accounts' totals over both servers"
    );
    let totals = one
        .save_requests(day, &counted(&[], &[("sbx-a", 4)]))
        .await
        .unwrap();
    assert_eq!(
        sorted(totals),
        owned(&[("usr_a", 5), ("usr_b", 5)]),
        "saving no account reads every account's total"
    );
    one.save_requests(day + 1, &counted(&[("usr_a", 7)], &[("sbx-a", 7)]))
        .await
        .unwrap();

    assert_eq!(
        sorted(other.account_requests(day, None).await.unwrap()),
        owned(&[("usr_a", 5), ("usr_b", 5)])
    );
    assert_eq!(
        sorted(
            other
                .account_requests(day + 1, Some("usr_a"))
                .await
                .unwrap()
        ),
        owned(&[("usr_a", 7)])
    );
    assert!(
        other
            .account_requests(day + 1, Some("usr_b"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        sorted(other.sandbox_requests(day, None).await.unwrap()),
        owned(&[("sbx-a", 5), ("sbx-b", 5)]),
        "a late, lower count does not lower a sandbox's"
    );
    assert_eq!(
        sorted(other.sandbox_requests(day, Some("sbx-b")).await.unwrap()),
        owned(&[("sbx-b", 5)])
    );

    assert_eq!(one.prune_requests(day + 1).await.unwrap(), 4);
    assert!(one.account_requests(day, None).await.unwrap().is_empty());
    assert_eq!(
        sorted(one.account_requests(day + 1, None).await.unwrap()),
        owned(&[("usr_a", 7)]),
        "the days from then are kept"
    );
}
on_both_backends!(adds_up_request_counts, request_counts);

on_both_backends!(
    store_spends_refresh_tokens_once_beside_other_writers,
    refresh_tokens
);
/// A refresh token is spent once; spent again, its whole grant is revoked.
/// Spending never fails because other writes commit meanwhile (on SQLite
/// a transaction that reads before it writes cannot take the write lock
/// once another writer committed: that answered 500 to an OAuth refresh).
async fn refresh_tokens(place: Place) {
    use sbx_store::oauth::{RefreshTokenRecord, Spent};
    let store = place.open().await;
    pets_sandbox(&*store, "sbx-r").await;
    let token = |hash: &str, family: &str| RefreshTokenRecord {
        token_hash: hash.into(),
        sandbox_id: "sbx-r".into(),
        client_id: "client".into(),
        sub: Some("user".into()),
        scope: "read".into(),
        family: family.into(),
        expires_at_ms: 1_000,
        used_at_ms: None,
    };
    const TOKENS: usize = 300;
    for n in 0..TOKENS {
        store
            .create_refresh_token(&token(&format!("t{n}"), &format!("f{n}")))
            .await
            .unwrap();
    }
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for n in 0..TOKENS {
                let change = ChangeSet {
                    sandbox_id: "sbx-r".into(),
                    rows: vec![row(&n.to_string(), Some("{}"), n as u64 + 1)],
                    ..ChangeSet::default()
                };
                store.save_changes(&[change]).await.unwrap();
            }
        })
    };
    let spends: Vec<_> = (0..TOKENS)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .spend_refresh_token("sbx-r", &format!("t{n}"), 50)
                    .await
            })
        })
        .collect();
    for (n, spent) in spends.into_iter().enumerate() {
        let spent = spent
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("spending t{n}: {e}"));
        assert_eq!(
            spent,
            Spent::Fresh(RefreshTokenRecord {
                used_at_ms: Some(50),
                ..token(&format!("t{n}"), &format!("f{n}"))
            })
        );
    }
    writer.await.unwrap();

    store
        .create_refresh_token(&token("t0-next", "f0"))
        .await
        .unwrap();
    assert_eq!(
        store.spend_refresh_token("sbx-r", "t0", 60).await.unwrap(),
        Spent::Replayed
    );
    assert_eq!(
        store
            .spend_refresh_token("sbx-r", "t0-next", 60)
            .await
            .unwrap(),
        Spent::Unknown,
        "a replay revokes every token of its grant"
    );
    assert_eq!(
        store
            .spend_refresh_token("sbx-other", "t1", 60)
            .await
            .unwrap(),
        Spent::Unknown,
        "a token is its sandbox's"
    );
}
