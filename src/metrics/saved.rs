//! Time saved, from what one (cache, project) published: the install times `cachectl run`
//! measured after each kind of restore, and the restores and saves themselves.
//!
//! A cold install is one that started from nothing restored (`RestoreOutcome=miss`); its median
//! is what an exact hit skips, and what a partial hit shortens to the median warm install
//! (`partial`). cachectl's own restore and save seconds are what the cache costs:
//!
//! ```text
//! saved = hits × (cold − hot) + partials × (cold − warm) − restore seconds − save seconds
//! ```
//!
//! where `hot` is the median install on exact hits: `run` publishes a skipped install as 0
//! seconds, and times one that `--always` ran anyway. Medians need [`MIN_SAMPLES`] timed
//! installs; with fewer the estimate says so instead of guessing.

use serde::Serialize;

/// Timed installs needed before their median counts as known: one or two builds are as likely
/// to be a slow mirror or a cold disk as the usual cost.
pub const MIN_SAMPLES: u64 = 3;

/// Timed installs of one kind (cold, warm or hot).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Distribution {
    /// How many installs were timed.
    pub installs: u64,
    /// Their seconds, added up.
    pub seconds: f64,
    /// Nearest-rank median and 90th percentile, seconds; null without installs.
    pub median_seconds: Option<f64>,
    pub p90_seconds: Option<f64>,
}

impl Distribution {
    /// From `(seconds, count)` samples: `count` installs that averaged `seconds`.
    pub fn of(samples: &[(f64, u64)]) -> Distribution {
        let mut sorted: Vec<(f64, u64)> = samples
            .iter()
            .copied()
            .filter(|&(s, n)| s.is_finite() && n > 0)
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let installs = sorted.iter().map(|&(_, n)| n).sum();
        Distribution {
            installs,
            seconds: sorted.iter().map(|&(s, n)| s * n as f64).sum(),
            median_seconds: nearest_rank(&sorted, installs, 50),
            p90_seconds: nearest_rank(&sorted, installs, 90),
        }
    }

    /// The median, when enough installs were timed to believe it.
    fn known_median(&self) -> Option<f64> {
        self.median_seconds.filter(|_| self.installs >= MIN_SAMPLES)
    }
}

/// The smallest value with at least `percent`% of the installs at or below it.
fn nearest_rank(sorted: &[(f64, u64)], total: u64, percent: u64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = (total * percent).div_ceil(100).max(1);
    let mut seen = 0;
    sorted.iter().find_map(|&(s, n)| {
        seen += n;
        (seen >= rank).then_some(s)
    })
}

/// The install times of one (cache, project), by how the restore before them went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Installs {
    /// After a miss (or no restore): the cost without the cache.
    pub cold: Distribution,
    /// After a partial hit.
    pub warm: Distribution,
    /// After an exact hit: 0 when `run` skipped the step, timed with `--always`.
    pub hot: Distribution,
}

/// What one (cache, project) did over the window, as the estimate needs it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Activity {
    pub hits: u64,
    pub partials: u64,
    /// All restores: hits, partials, misses and errors.
    pub restores: u64,
    pub restore_seconds: f64,
    pub save_seconds: f64,
}

/// The estimate, and its parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TimeSaved {
    /// Seconds saved (negative: the cache cost more than it saved); null when the cold
    /// install is not known.
    pub seconds: Option<f64>,
    pub minutes: Option<f64>,
    /// `seconds` as a fraction of what the restores' builds would have spent on cold installs
    /// (restores × median cold install).
    pub share: Option<f64>,
    /// hits × (cold − hot).
    pub exact_hits_seconds: Option<f64>,
    /// partials × (cold − warm); null when the warm install is not known (then counted as 0).
    pub partial_hits_seconds: Option<f64>,
    /// cachectl's own time: restore seconds + save seconds.
    pub cost_seconds: f64,
    /// What is missing or left out, one sentence each.
    pub notes: Vec<String>,
}

impl TimeSaved {
    /// No estimate: only cachectl's own `cost` seconds, and `notes` saying what is missing.
    fn unknown(cost: f64, notes: Vec<String>) -> TimeSaved {
        TimeSaved {
            cost_seconds: cost,
            notes,
            ..TimeSaved::default()
        }
    }
}

/// The estimate for one (cache, project) named `cache` (for the notes).
pub fn estimate(cache: &str, activity: &Activity, installs: &Installs) -> TimeSaved {
    let cost = activity.restore_seconds.max(0.0) + activity.save_seconds.max(0.0);
    let mut notes = Vec::new();
    let timed = installs.cold.installs + installs.warm.installs + installs.hot.installs;
    let Some(cold) = installs.cold.known_median() else {
        notes.push(if timed == 0 {
            format!("no install of cache {cache} was timed: run it with `cachectl run --cache {cache} -- ...`")
        } else {
            format!(
                "too few misses to know the cold install: {} timed, {MIN_SAMPLES} needed",
                installs.cold.installs
            )
        });
        return TimeSaved::unknown(cost, notes);
    };
    let hot = if activity.hits == 0 {
        0.0
    } else if let Some(hot) = installs.hot.known_median() {
        hot
    } else {
        notes.push(format!(
            "too few exact hits timed to know what they cost: {} timed, {MIN_SAMPLES} needed",
            installs.hot.installs
        ));
        return TimeSaved::unknown(cost, notes);
    };
    let exact = activity.hits as f64 * (cold - hot);
    let partial = if activity.partials == 0 {
        Some(0.0)
    } else {
        let warm = installs.warm.known_median();
        if warm.is_none() {
            notes.push(format!(
                "{} partial hits not counted: {} warm installs timed, {MIN_SAMPLES} needed",
                activity.partials, installs.warm.installs
            ));
        }
        warm.map(|warm| activity.partials as f64 * (cold - warm))
    };
    let seconds = exact + partial.unwrap_or(0.0) - cost;
    let without = activity.restores as f64 * cold;
    TimeSaved {
        seconds: Some(seconds),
        minutes: Some(seconds / 60.0),
        share: (without > 0.0).then(|| seconds / without),
        exact_hits_seconds: Some(exact),
        partial_hits_seconds: partial,
        cost_seconds: cost,
        notes,
    }
}

/// The estimates of several (cache, project) pairs added up: the known ones, with a note for
/// the others. `without` is each pair's restores × median cold install (for the share).
pub fn total(parts: &[(TimeSaved, f64)]) -> TimeSaved {
    let known: Vec<&(TimeSaved, f64)> = parts.iter().filter(|(t, _)| t.seconds.is_some()).collect();
    let cost = parts.iter().map(|(t, _)| t.cost_seconds).sum();
    let mut notes = Vec::new();
    let unknown = parts.len() - known.len();
    if unknown > 0 {
        notes.push(format!(
            "{unknown} of {} caches left out: their cold install is not known",
            parts.len()
        ));
    }
    if known.is_empty() {
        return TimeSaved::unknown(cost, notes);
    }
    let sum = |f: fn(&TimeSaved) -> Option<f64>| known.iter().filter_map(|(t, _)| f(t)).sum();
    let seconds: f64 = sum(|t| t.seconds);
    let without: f64 = known.iter().map(|(_, w)| w).sum();
    TimeSaved {
        seconds: Some(seconds),
        minutes: Some(seconds / 60.0),
        share: (without > 0.0).then(|| seconds / without),
        exact_hits_seconds: Some(sum(|t| t.exact_hits_seconds)),
        partial_hits_seconds: Some(sum(|t| t.partial_hits_seconds)),
        cost_seconds: cost,
        notes,
    }
}

/// Restores × median cold install: what the restores' builds would have spent without the
/// cache (0 when the cold install is not known).
pub fn without_cache(activity: &Activity, installs: &Installs) -> f64 {
    installs
        .cold
        .known_median()
        .map_or(0.0, |cold| activity.restores as f64 * cold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        type Case<'a> = (&'a str, &'a [(f64, u64)], Option<f64>, Option<f64>);
        let cases: &[Case] = &[
            ("none", &[], None, None),
            ("one", &[(7.0, 1)], Some(7.0), Some(7.0)),
            (
                "odd",
                &[(50.0, 1), (30.0, 1), (40.0, 1)],
                Some(40.0),
                Some(50.0),
            ),
            (
                "even takes the lower middle",
                &[(1.0, 1), (2.0, 1), (3.0, 1), (4.0, 1)],
                Some(2.0),
                Some(4.0),
            ),
            (
                "counts weigh",
                &[(10.0, 9), (100.0, 1)],
                Some(10.0),
                Some(10.0),
            ),
            (
                "ten",
                &[
                    (1.0, 1),
                    (2.0, 1),
                    (3.0, 1),
                    (4.0, 1),
                    (5.0, 1),
                    (6.0, 1),
                    (7.0, 1),
                    (8.0, 1),
                    (9.0, 1),
                    (10.0, 1),
                ],
                Some(5.0),
                Some(9.0),
            ),
            (
                "zero counts and NaN ignored",
                &[(f64::NAN, 1), (3.0, 0), (4.0, 1)],
                Some(4.0),
                Some(4.0),
            ),
        ];
        for (name, samples, median, p90) in cases {
            let d = Distribution::of(samples);
            assert_eq!(d.median_seconds, *median, "case {name}");
            assert_eq!(d.p90_seconds, *p90, "case {name}");
        }
        let d = Distribution::of(&[(10.0, 2), (40.0, 1)]);
        assert_eq!((d.installs, d.seconds), (3, 60.0));
    }

    fn installs(cold: &[(f64, u64)], warm: &[(f64, u64)], hot: &[(f64, u64)]) -> Installs {
        Installs {
            cold: Distribution::of(cold),
            warm: Distribution::of(warm),
            hot: Distribution::of(hot),
        }
    }

    #[test]
    fn time_saved_arithmetic() {
        let activity = Activity {
            hits: 10,
            partials: 3,
            restores: 16,
            restore_seconds: 25.0,
            save_seconds: 15.0,
        };
        let i = installs(
            &[(30.0, 1), (40.0, 1), (50.0, 1)],
            &[(10.0, 1), (12.0, 1), (14.0, 1)],
            // Every exact hit skipped the step: 0 s each.
            &[(0.0, 10)],
        );
        let t = estimate("npm", &activity, &i);
        // 10 × (40 − 0) + 3 × (40 − 12) − (25 + 15) = 400 + 84 − 40
        assert_eq!(t.exact_hits_seconds, Some(400.0));
        assert_eq!(t.partial_hits_seconds, Some(84.0));
        assert_eq!(t.cost_seconds, 40.0);
        assert_eq!(t.seconds, Some(444.0));
        assert_eq!(t.minutes, Some(7.4));
        // 16 restores × 40 s cold = 640 s without the cache.
        assert_eq!(t.share, Some(444.0 / 640.0));
        assert!(t.notes.is_empty(), "{:?}", t.notes);
        assert_eq!(without_cache(&activity, &i), 640.0);
    }

    #[test]
    fn hits_that_still_ran_save_only_the_difference() {
        let activity = Activity {
            hits: 4,
            restores: 5,
            ..Activity::default()
        };
        let i = installs(&[(100.0, 3)], &[], &[(20.0, 4)]);
        let t = estimate("target", &activity, &i);
        assert_eq!(t.exact_hits_seconds, Some(320.0));
        assert_eq!(t.seconds, Some(320.0));
    }

    #[test]
    fn too_few_misses_is_said_not_guessed() {
        let activity = Activity {
            hits: 20,
            restores: 22,
            restore_seconds: 10.0,
            ..Activity::default()
        };
        let t = estimate("npm", &activity, &installs(&[(40.0, 2)], &[], &[(0.0, 20)]));
        assert_eq!((t.seconds, t.minutes, t.share), (None, None, None));
        assert_eq!(t.cost_seconds, 10.0);
        assert_eq!(
            t.notes,
            ["too few misses to know the cold install: 2 timed, 3 needed"]
        );
        let t = estimate("npm", &activity, &Installs::default());
        assert_eq!(t.seconds, None);
        assert_eq!(
            t.notes,
            ["no install of cache npm was timed: run it with `cachectl run --cache npm -- ...`"]
        );
    }

    #[test]
    fn exact_hits_without_three_timed_are_said_not_guessed() {
        let activity = Activity {
            hits: 8,
            restores: 9,
            ..Activity::default()
        };
        // An `--always` step whose hot installs went unpublished: one is not enough.
        let t = estimate(
            "target",
            &activity,
            &installs(&[(100.0, 3)], &[], &[(90.0, 1)]),
        );
        assert_eq!(t.seconds, None);
        assert_eq!(
            t.notes,
            ["too few exact hits timed to know what they cost: 1 timed, 3 needed"]
        );
    }

    #[test]
    fn partial_hits_without_a_known_warm_install_count_as_nothing() {
        let activity = Activity {
            hits: 2,
            partials: 5,
            restores: 10,
            ..Activity::default()
        };
        let t = estimate(
            "npm",
            &activity,
            &installs(&[(60.0, 3)], &[(5.0, 1)], &[(0.0, 2), (1.0, 1)]),
        );
        assert_eq!(t.partial_hits_seconds, None);
        assert_eq!(t.seconds, Some(120.0));
        assert_eq!(
            t.notes,
            ["5 partial hits not counted: 1 warm installs timed, 3 needed"]
        );
    }

    #[test]
    fn totals_add_the_known_and_name_the_rest() {
        let a = TimeSaved {
            seconds: Some(300.0),
            exact_hits_seconds: Some(320.0),
            partial_hits_seconds: Some(0.0),
            cost_seconds: 20.0,
            ..TimeSaved::default()
        };
        let b = TimeSaved {
            cost_seconds: 5.0,
            ..TimeSaved::default()
        };
        let t = total(&[(a, 600.0), (b, 0.0)]);
        assert_eq!(t.seconds, Some(300.0));
        assert_eq!(t.minutes, Some(5.0));
        assert_eq!(t.share, Some(0.5));
        assert_eq!(t.cost_seconds, 25.0);
        assert_eq!(
            t.notes,
            ["1 of 2 caches left out: their cold install is not known"]
        );
    }
}
