//! Messages to systemd (sd_notify), sent from their own thread: a notify socket nobody reads (a full datagram
//! queue) must never block the main loop. When even the hand-off queue is full, a message is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;

pub struct Notifier {
    tx: std::sync::mpsc::SyncSender<String>,
    pending: Arc<AtomicUsize>,
}

impl Notifier {
    pub fn start() -> Notifier {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(16);
        let pending = Arc::new(AtomicUsize::new(0));
        let left = Arc::clone(&pending);
        std::thread::spawn(move || {
            for msg in rx {
                if let Err(e) = sd_notify::notify(&[NotifyState::Custom(&msg)]) {
                    log::debug!("sd_notify: {e}");
                }
                left.fetch_sub(1, Ordering::SeqCst);
            }
        });
        Notifier { tx, pending }
    }

    pub fn send(&self, states: &[NotifyState]) {
        let msg = states.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n");
        self.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.try_send(msg).is_err() {
            self.pending.fetch_sub(1, Ordering::SeqCst);
            log::debug!("sd_notify: the notify socket is not being read; message dropped");
        }
    }

    /// Waits (at most `limit`) until every queued message went out: used before exiting.
    pub async fn flush(&self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        while self.pending.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
