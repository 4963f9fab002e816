//! One shutdown signal per process: SIGINT, SIGTERM, or (for processes that
//! `lyceum dev` supervises) standard input closing, which is how a child
//! notices that its supervisor died even when it was killed with SIGKILL.

use tokio::sync::watch;

/// A cloneable handle that resolves once shutdown has begun.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl Shutdown {
    /// Starts listening for the signals; with `watch_stdin`, EOF on stdin
    /// also stops the process.
    ///
    /// # Errors
    /// Fails when the signal handlers cannot be installed.
    pub fn listen(watch_stdin: bool) -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        let (tx, rx) = watch::channel(false);
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        tokio::spawn(async move {
            let stdin_closed = async {
                if watch_stdin {
                    stdin_eof().await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            let why = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
                () = stdin_closed => "supervisor gone (stdin closed)",
            };
            tracing::info!(reason = why, "shutting down");
            let _ = tx.send(true);
        });
        Ok(Self { rx })
    }

    /// A handle that never fires unless `trigger` is used (for tests).
    pub fn manual() -> (watch::Sender<bool>, Self) {
        let (tx, rx) = watch::channel(false);
        (tx, Self { rx })
    }

    /// Resolves once shutdown has begun. Cancel safe.
    pub async fn wait(mut self) {
        // An error means the sender is gone, which only happens at exit.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }

    /// True once shutdown has begun.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }
}

async fn stdin_eof() {
    use tokio::io::AsyncReadExt as _;
    let mut stdin = tokio::io::stdin();
    let mut buffer = [0_u8; 256];
    loop {
        match stdin.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
