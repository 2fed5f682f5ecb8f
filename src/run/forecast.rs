//! `surge run --forecast DIR`: the ramp forecast a calibration bundle holds
//! (`surge calibrate --ramp`), read before any load so a wrong folder is
//! said at once, and kept beside the autoscaler's timeline it is compared
//! with.

use super::RunError;
use crate::bundle::AutoscalingForecast;
use crate::calibrate::Calibration;
use std::path::Path;

/// The forecast `request` asks to be compared with (`--forecast`), when
/// it asks; refused when the run watches no HPA, before any load.
pub fn for_run(
    request: &super::RunRequest,
    scenario: &crate::scenario::Scenario,
) -> Result<Option<AutoscalingForecast>, RunError> {
    let Some(dir) = &request.forecast else {
        return Ok(None);
    };
    let watched = crate::chaos::autoscaler::resolve(&request.chaos, scenario)
        .map_err(RunError::Autoscaler)?
        .is_some();
    if !watched {
        return Err(RunError::Forecast {
            path: dir.clone(),
            why:
                "the forecast is of the autoscaler's course: it goes with the HPA to watch (--hpa)"
                    .into(),
        });
    }
    read(dir).map(Some)
}

/// The forecast in calibration bundle `dir`.
pub fn read(dir: &Path) -> Result<AutoscalingForecast, RunError> {
    let refused = |why: String| RunError::Forecast {
        path: dir.to_path_buf(),
        why,
    };
    let file = dir.join("calibration.json");
    let text = std::fs::read_to_string(&file)
        .map_err(|e| refused(format!("no calibration bundle ({}: {e})", file.display())))?;
    let c: Calibration = serde_json::from_str(&text)
        .map_err(|e| refused(format!("{} is not a calibration: {e}", file.display())))?;
    let f = c.ramp_forecast.ok_or_else(|| {
        refused("the calibration forecast no ramp: run surge calibrate with --ramp".into())
    })?;
    Ok(AutoscalingForecast {
        calibration: dir.display().to_string(),
        ramp: f.ramp,
        hpa: f.hpa,
        over_slo_s: f.over_slo_s,
        peak_ready: f.peak_ready,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_a_forecast_is_refused_saying_why() {
        let dir = tempfile::tempdir().unwrap();
        let said = read(dir.path()).unwrap_err().to_string();
        assert!(said.contains("no calibration bundle"), "{said}");
        std::fs::write(dir.path().join("calibration.json"), "{}").unwrap();
        let said = read(dir.path()).unwrap_err().to_string();
        assert!(said.contains("is not a calibration"), "{said}");
        use crate::calibrate::fixtures::{demand, step};
        let slo = crate::calibrate::capacity::Slo {
            p99_ms: 100.0,
            error_budget: 0.01,
        };
        let mut c =
            crate::calibrate::analyse(vec![step(10.0, 50.0), step(20.0, 150.0)], 1, slo, &demand());
        std::fs::write(
            dir.path().join("calibration.json"),
            serde_json::to_string(&c).unwrap(),
        )
        .unwrap();
        let said = read(dir.path()).unwrap_err().to_string();
        assert!(
            said.ends_with("the calibration forecast no ramp: run surge calibrate with --ramp"),
            "{said}"
        );
        c.ramp_forecast = Some(crate::calibrate::forecast::RampForecast {
            ramp: "morning over 170 s, peak 50/s".into(),
            hpa: "as recommended".into(),
            over_slo_s: (60, 74),
            requests_over_slo: (2872.0, 3572.0),
            peak_ready: (4, 4),
            morning_min_replicas: Some(3),
            peak_needs: 3,
            reasons: Vec::new(),
        });
        std::fs::write(
            dir.path().join("calibration.json"),
            serde_json::to_string(&c).unwrap(),
        )
        .unwrap();
        let f = read(dir.path()).unwrap();
        assert_eq!((f.over_slo_s, f.peak_ready), ((60, 74), (4, 4)));
        assert_eq!(f.calibration, dir.path().display().to_string());
    }
}
