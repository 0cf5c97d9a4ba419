//! Hosts sharing the database: who is alive, who owns which instance, and
//! how one host wakes another.
//!
//! Each run of a host registers under a fresh ID (its incarnation) in
//! `hosts` with a lease, `alive_until`, on the database's clock, renewed
//! every third of the lease. A host whose renewal finds the lease already
//! expired (it was stopped, or cut off, for longer than the lease) is
//! taken for dead by the others, who may have taken over its instances:
//! it registers again under a new ID, and everything it owned under the
//! old one is lost to it, to be claimed again like any dead host's.
//!
//! An instance's `owner` is the host that runs its episodes. Owning is
//! cheap to check in a commit (the row is locked anyway) and needs no
//! per-instance renewal: an owner is current while its host's lease is.
//! A host asks the owner of an instance it cannot claim to run it with
//! `NOTIFY` on the owner's channel; notifications are hints (a lost one
//! delays work until the next poll of `unowned_work`, never loses it).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use deadpool_postgres::Pool;
use futures::StreamExt as _;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

use reprise_core::store::WakeUp;

use crate::rows;

/// The database's clock in milliseconds since the Unix epoch: every lease
/// is measured on it, so hosts' clocks may disagree.
pub(crate) const DB_NOW: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// Instances remembered as owned, at most.
const OWNED_CACHE: usize = 100_000;

/// Old hosts' rows are kept this long after their lease ended (for the
/// record), then deleted.
const FORGET_AFTER: Duration = Duration::from_secs(3600);

/// What the engine gave to be told of instances to run.
type Wake = Arc<dyn Fn(WakeUp<'_>) + Send + Sync>;

/// This host, as the other hosts see it.
pub(crate) struct Membership {
    /// The current incarnation's ID.
    id: RwLock<String>,
    /// Lets the listener follow a new incarnation.
    changes: watch::Sender<String>,
    pub(crate) ttl: Duration,
    /// Where this host serves ([`crate::Options::seat`]).
    seat: Option<String>,
    /// Instances known to be owned by this incarnation (a cache: a commit
    /// checks the row).
    owned: Mutex<HashSet<String>>,
    /// The component versions this host serves, registered again under a
    /// new incarnation.
    pub(crate) served: Mutex<Vec<String>>,
    /// Told the ID of each instance another host asks this one to run.
    wake: Mutex<Option<Wake>>,
    /// Set by a clean shutdown: nothing more is claimed or renewed.
    leaving: std::sync::atomic::AtomicBool,
}

impl Membership {
    pub(crate) fn new(ttl: Duration, seat: Option<String>) -> Arc<Membership> {
        let id = new_id();
        Arc::new(Membership {
            changes: watch::Sender::new(id.clone()),
            id: RwLock::new(id),
            ttl,
            seat,
            owned: Mutex::new(HashSet::new()),
            served: Mutex::new(Vec::new()),
            wake: Mutex::new(None),
            leaving: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub(crate) fn id(&self) -> String {
        self.id.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn leave(&self) {
        self.leaving
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn leaving(&self) -> bool {
        self.leaving.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub(crate) fn owns(&self, instance: &str) -> bool {
        self.owned_set().contains(instance)
    }

    pub(crate) fn owned(&self, instance: &str) {
        let mut owned = self.owned_set();
        if owned.len() >= OWNED_CACHE {
            // A cache: forgetting costs a claim's round trip, not safety.
            owned.clear();
        }
        owned.insert(instance.to_owned());
    }

    pub(crate) fn disowned(&self, instance: &str) {
        self.owned_set().remove(instance);
    }

    fn owned_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.owned.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn set_wake(&self, wake: Box<dyn Fn(WakeUp<'_>) + Send + Sync>) {
        *self.wake.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::from(wake));
    }

    fn wake(&self, payload: &str) {
        let wake = self.wake.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(wake) = wake {
            wake(wake_up(payload));
        }
    }

    fn ttl_millis(&self) -> i64 {
        self.ttl.as_millis() as i64
    }

    /// Starts a new incarnation: nothing is owned any more.
    fn reincarnate(&self) -> String {
        let id = new_id();
        *self.id.write().unwrap_or_else(|e| e.into_inner()) = id.clone();
        self.owned_set().clear();
        self.changes.send_replace(id.clone());
        id
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A wake-up's payload for a request `host` accepted for `instance`:
/// `/HOST/ID`. Any other wake-up's is the instance's ID alone, and no
/// instance or entity ID starts with `/` (a host of an earlier release
/// reads this one as an unknown instance: its poll finds the work).
pub(crate) fn accepted_payload(host: &str, instance: &str) -> String {
    format!("/{host}/{instance}")
}

/// What a wake-up's payload says ([`accepted_payload`]).
fn wake_up(payload: &str) -> WakeUp<'_> {
    match payload
        .strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
    {
        Some((host, instance)) => WakeUp {
            instance,
            accepted_by: Some(host),
        },
        None => WakeUp {
            instance: payload,
            accepted_by: None,
        },
    }
}

/// The channel a host listens on: its incarnation's.
pub(crate) fn channel(host: &str) -> String {
    format!("{CHANNEL_PREFIX}{host}")
}

/// What a host's channel is named: this, then its ID.
pub(crate) const CHANNEL_PREFIX: &str = "reprise_";

/// Registers the current incarnation (alive for one lease from now) and
/// the versions it serves.
pub(crate) async fn register(pool: &Pool, membership: &Membership) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let id = membership.id();
    rows::execute(&transaction, &format!(
                "INSERT INTO hosts (host_id, started_at, alive_until, seat) VALUES ($1, {DB_NOW}, {DB_NOW} + $2, $3)"
            ),
            &[&id, &membership.ttl_millis(), &membership.seat],
        )
        .await?;
    let served = membership
        .served
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    rows::execute(
        &transaction,
        "INSERT INTO served (host_id, version) SELECT $1, unnest($2::text[])",
        &[&id, &served],
    )
    .await?;
    transaction.commit().await?;
    Ok(())
}

/// Ends the earlier runs of a host on this host's seat, if it has one:
/// the seat proves them gone (this process holds its address now), so
/// their instances, timers and activities are taken over at once rather
/// than after their lease. Called once, at start-up: a new incarnation of
/// a running host (its lease lost) ends nobody.
pub(crate) async fn end_earlier_runs(pool: &Pool, membership: &Membership) -> anyhow::Result<()> {
    let Some(seat) = &membership.seat else {
        return Ok(());
    };
    let client = pool.get().await?;
    let ended = rows::query(
        &client,
        &format!(
            "UPDATE hosts SET alive_until = {DB_NOW} - 1 WHERE seat = $1 AND alive_until >= {DB_NOW}
             RETURNING host_id"
        ),
        &[seat],
    )
    .await?;
    for run in ended {
        let id: String = run.get(0);
        tracing::info!(
            "ended this host's previous run on {seat} (host {id}): it is gone, its work is taken over now"
        );
    }
    Ok(())
}

/// Renews the lease every third of it, for as long as the runtime runs.
pub(crate) async fn heartbeat(pool: Pool, membership: Arc<Membership>) {
    let mut ticks = tokio::time::interval(membership.ttl / 3);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        if membership.leaving() {
            return;
        }
        exit_if_schema_is_newer(&pool).await;
        // Bounded: a renewal stuck on a dead connection must not keep the
        // host from trying again (and, lease lost, from registering anew).
        let renewed = tokio::time::timeout(membership.ttl / 3, renew(&pool, &membership))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in {:?}", membership.ttl / 3)));
        match renewed {
            Ok(true) => {}
            Ok(false) => {
                let old = membership.id();
                let new = membership.reincarnate();
                tracing::warn!(
                    "this host's lease expired (was it stopped, or cut off from the database?): other hosts may have taken over its instances; registering again as {new} (was {old})"
                );
                if let Err(error) = register(&pool, &membership).await {
                    tracing::error!("cannot register this host again: {error:#}");
                }
            }
            Err(error) => tracing::warn!("cannot renew this host's lease: {error:#}"),
        }
        let folded = tokio::time::timeout(membership.ttl / 3, fold_counts(&pool))
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer in {:?}", membership.ttl / 3)));
        if let Err(error) = folded {
            tracing::warn!("cannot fold the instance counts: {error:#}");
        }
    }
}

/// Stops the process if a newer host has upgraded the schema since this
/// one started: what a newer host stores, an older one may not read, and
/// a host that could not read its work would fail it. Its instances are
/// taken over by the others; restarted as the same version, it refuses
/// the database and says why. (A failed read is left to the next beat.)
async fn exit_if_schema_is_newer(pool: &Pool) {
    let Ok(version) = crate::schema::version(pool).await else {
        return;
    };
    if version > crate::schema::VERSION {
        tracing::error!(
            "the database's schema is now version {version}, newer than this host understands ({}): a newer host upgraded it; this host stops (exit code 75) and leaves its work to the newer hosts",
            crate::schema::VERSION
        );
        std::process::exit(75);
    }
}

/// Folds the instance counts' changes (`counts.rs`), so they stay few
/// however long nobody reads the counts.
async fn fold_counts(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    crate::counts::fold(&transaction).await?;
    transaction.commit().await?;
    Ok(())
}

/// Extends the lease if it has not expired; `false` if it had.
async fn renew(pool: &Pool, membership: &Membership) -> anyhow::Result<bool> {
    let client = pool.get().await?;
    let renewed = rows::execute(
        &client,
        &format!(
            "UPDATE hosts SET alive_until = {DB_NOW} + $2 WHERE host_id = $1 AND alive_until > {DB_NOW}"
        ),
        &[&membership.id(), &membership.ttl_millis()],
    )
    .await?;
    rows::execute(
        &client,
        &format!("DELETE FROM hosts WHERE alive_until < {DB_NOW} - $1"),
        &[&(FORGET_AFTER.as_millis() as i64)],
    )
    .await?;
    Ok(renewed == 1)
}

/// Listens on this host's channel and wakes the engine for each instance
/// another host names; reconnects after a lost connection, and follows a
/// new incarnation.
pub(crate) async fn listen(config: tokio_postgres::Config, membership: Arc<Membership>) {
    loop {
        if let Err(error) = listen_once(&config, &membership).await {
            tracing::warn!("lost the connection that hears other hosts (retrying): {error:#}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn listen_once(
    config: &tokio_postgres::Config,
    membership: &Arc<Membership>,
) -> anyhow::Result<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    let (sender, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(notification)) => {
                    let _ = sender.send(notification.payload().to_owned());
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!("the listening connection failed: {error}");
                    break;
                }
            }
        }
    });
    let mut changes = membership.changes.subscribe();
    let mut listening = changes.borrow_and_update().clone();
    client
        .batch_execute(&format!("LISTEN \"{}\"", channel(&listening)))
        .await?;
    loop {
        tokio::select! {
            payload = notifications.recv() => match payload {
                Some(payload) => membership.wake(&payload),
                None => break,
            },
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                let id = changes.borrow_and_update().clone();
                client
                    .batch_execute(&format!(
                        "UNLISTEN \"{}\"; LISTEN \"{}\"",
                        channel(&listening),
                        channel(&id)
                    ))
                    .await?;
                listening = id;
            }
        }
    }
    driver.abort();
    anyhow::bail!("the listening connection closed")
}
