//! Fair shares of the instance pool: how many invocations one command,
//! one user and one server may have running at once. The pool itself is
//! first come, first served; without shares, one untrusted command that
//! spins to its deadline, started by many users, holds every slot.
//!
//! An invocation over a share waits for a place, in order, without holding
//! a slot of the pool; one that has not found a place within its deadline
//! is told the bot is busy. A burst of quick commands only waits
//! microseconds; a command that spins waits behind itself, not in front of
//! everyone else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Who an invocation's share is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Holder {
    User(String),
    /// A server; `None` stands for all direct messages together.
    Server(Option<String>),
    Command(String),
}

/// The places of every holder with something running or waiting.
#[derive(Debug, Default, Clone)]
pub struct Shares {
    places: Arc<Mutex<HashMap<Holder, Share>>>,
}

#[derive(Debug)]
struct Share {
    limit: u32,
    places: Arc<Semaphore>,
}

/// One invocation's places, given back when dropped.
#[derive(Debug)]
pub struct Taken {
    shares: Shares,
    held: Vec<(Holder, Arc<Semaphore>, OwnedSemaphorePermit)>,
}

impl Shares {
    /// Takes a place from each `(holder, limit)`, in order, waiting at most
    /// `within` in all; `Err` names the holder it could not get one from.
    pub async fn take(&self, wanted: &[(Holder, u32)], within: Duration) -> Result<Taken, Holder> {
        let mut taken = Taken { shares: self.clone(), held: Vec::with_capacity(wanted.len()) };
        let until = tokio::time::Instant::now() + within;
        for (holder, limit) in wanted {
            let places = self.places_of(holder, *limit);
            match tokio::time::timeout_at(until, places.clone().acquire_owned()).await {
                Ok(Ok(permit)) => taken.held.push((holder.clone(), places, permit)),
                _ => {
                    // Its entry goes too if nobody else holds or waits.
                    drop(places);
                    self.forget_if_idle(holder);
                    return Err(holder.clone());
                }
            }
        }
        Ok(taken)
    }

    /// Invocations `holder` has running.
    pub fn running(&self, holder: &Holder) -> u32 {
        let shares = self.places.lock().unwrap_or_else(|p| p.into_inner());
        shares.get(holder).map_or(0, |s| s.limit.saturating_sub(s.places.available_permits() as u32))
    }

    /// The holder's places, made (or remade, when the config changed its
    /// limit: those running keep their old places) as needed.
    fn places_of(&self, holder: &Holder, limit: u32) -> Arc<Semaphore> {
        let mut shares = self.places.lock().unwrap_or_else(|p| p.into_inner());
        let share = shares
            .entry(holder.clone())
            .or_insert_with(|| Share { limit, places: Arc::new(Semaphore::new(limit as usize)) });
        if share.limit != limit {
            *share = Share { limit, places: Arc::new(Semaphore::new(limit as usize)) };
        }
        share.places.clone()
    }

    /// Forgets a holder nobody holds or waits for (the map keeps only
    /// users and servers with something running).
    fn forget_if_idle(&self, holder: &Holder) {
        let mut shares = self.places.lock().unwrap_or_else(|p| p.into_inner());
        // Waiters and holders each keep a clone; the map's is the last.
        if shares.get(holder).is_some_and(|s| Arc::strong_count(&s.places) == 1) {
            shares.remove(holder);
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        for (holder, places, permit) in self.held.drain(..) {
            drop(permit);
            drop(places);
            self.shares.forget_if_idle(&holder);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: Duration = Duration::from_millis(50);

    #[tokio::test]
    async fn a_share_waits_for_a_place_and_gives_up_at_its_deadline() {
        let shares = Shares::default();
        let spin = || Holder::Command("spin".into());
        let user = |id: &str| Holder::User(id.into());
        let first = shares.take(&[(user("1"), 4), (spin(), 2)], SOON).await.unwrap();
        let second = shares.take(&[(user("2"), 4), (spin(), 2)], SOON).await.unwrap();
        assert_eq!(shares.take(&[(user("3"), 4), (spin(), 2)], SOON).await.unwrap_err(), spin());
        // Its user's place was given back.
        assert_eq!(shares.running(&user("3")), 0);
        assert_eq!(shares.running(&spin()), 2);

        // A waiting invocation gets the place as soon as one is given back.
        let waiting = {
            let shares = shares.clone();
            tokio::spawn(async move { shares.take(&[(spin(), 2)], Duration::from_secs(60)).await.is_ok() })
        };
        tokio::task::yield_now().await;
        drop(first);
        assert!(waiting.await.unwrap());
        drop(second);
        assert_eq!(shares.running(&spin()), 0);
        assert!(shares.places.lock().unwrap().is_empty(), "holders with nothing running are forgotten");
    }
}
