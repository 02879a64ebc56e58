//! OTLP metrics → one `metric` event per data point: sums and gauges with their value,
//! histograms with count, sum, min, max and buckets. Attributes of the point and of the
//! resource are kept apart. The id is derived from the point's name, attributes, resource and
//! times, so a retried export replaces instead of duplicating. Exponential histograms and
//! summaries are not mapped yet: such a metric is rejected with that reason, the rest of the
//! export is kept.

use serde_json::{Map, Value, json};

use super::common::{Mapped, attributes_to_map, compact, content_id, envelope, time};
use super::proto::{
    ExportMetricsServiceRequest, HistogramDataPoint, Metric, NumberDataPoint, TEMPORALITY_CUMULATIVE,
    TEMPORALITY_DELTA,
};

fn temporality(value: i32) -> Option<&'static str> {
    match value {
        TEMPORALITY_DELTA => Some("delta"),
        TEMPORALITY_CUMULATIVE => Some("cumulative"),
        _ => None,
    }
}

/// Common fields of a point's event body, and its envelope.
struct Point<'a> {
    metric: &'a Metric,
    kind: &'static str,
    temporality: Option<&'static str>,
    resource: &'a Map<String, Value>,
}

impl Point<'_> {
    fn event(
        &self,
        attributes: Map<String, Value>,
        start_nano: u64,
        time_nano: u64,
        mut values: Value,
    ) -> Mapped {
        if time_nano == 0 {
            return Err(format!("metric {:?}: a data point has no time", self.metric.name));
        }
        let resource = Value::Object(self.resource.clone()).to_string();
        let point_attributes = Value::Object(attributes.clone()).to_string();
        let id = content_id(&[
            self.metric.name.as_bytes(),
            self.kind.as_bytes(),
            point_attributes.as_bytes(),
            resource.as_bytes(),
            &start_nano.to_le_bytes(),
            &time_nano.to_le_bytes(),
        ]);
        let common = json!({
            "id": id,
            "name": self.metric.name,
            "kind": self.kind,
            "unit": (!self.metric.unit.is_empty()).then_some(&self.metric.unit),
            "temporality": self.temporality,
            "time": time(time_nano),
            "start_time": (start_nano > 0).then(|| time(start_nano)),
            "attributes": attributes,
            "resource": self.resource,
        });
        if let (Value::Object(values), Value::Object(common)) = (&mut values, common) {
            values.extend(common);
        }
        Ok(vec![envelope(
            format!("otlp-metric-{id}"),
            "metric",
            time_nano,
            compact(values),
        )])
    }

    fn number(&self, point: &NumberDataPoint) -> Mapped {
        let value = point
            .as_double
            .or(point.as_int.map(|i| i as f64))
            .ok_or_else(|| format!("metric {:?}: a data point has no value", self.metric.name))?;
        self.event(
            attributes_to_map(&point.attributes, ""),
            point.start_time_unix_nano,
            point.time_unix_nano,
            json!({ "value": value }),
        )
    }

    fn histogram(&self, point: &HistogramDataPoint) -> Mapped {
        self.event(
            attributes_to_map(&point.attributes, ""),
            point.start_time_unix_nano,
            point.time_unix_nano,
            json!({
                "count": point.count,
                "sum": point.sum,
                "min": point.min,
                "max": point.max,
                "bucket_counts": point.bucket_counts,
                "explicit_bounds": point.explicit_bounds,
            }),
        )
    }
}

/// Maps every data point of an OTLP metrics export (one result per point, in order; one
/// rejection for a metric of a kind that is not mapped).
pub fn map(request: &ExportMetricsServiceRequest) -> Vec<Mapped> {
    let mut out = Vec::new();
    for resource_metrics in &request.resource_metrics {
        let resource = attributes_to_map(
            resource_metrics
                .resource
                .as_ref()
                .map(|r| r.attributes.as_slice())
                .unwrap_or_default(),
            "",
        );
        for scope in &resource_metrics.scope_metrics {
            for metric in &scope.metrics {
                let point = |kind, temporality| Point {
                    metric,
                    kind,
                    temporality,
                    resource: &resource,
                };
                if let Some(sum) = &metric.sum {
                    let point = point("sum", temporality(sum.aggregation_temporality));
                    out.extend(sum.data_points.iter().map(|p| point.number(p)));
                } else if let Some(gauge) = &metric.gauge {
                    let point = point("gauge", None);
                    out.extend(gauge.data_points.iter().map(|p| point.number(p)));
                } else if let Some(histogram) = &metric.histogram {
                    let point = point("histogram", temporality(histogram.aggregation_temporality));
                    out.extend(histogram.data_points.iter().map(|p| point.histogram(p)));
                } else {
                    let kind = if metric.exponential_histogram.is_some() {
                        "exponential histograms"
                    } else if metric.summary.is_some() {
                        "summaries"
                    } else {
                        "metrics without data"
                    };
                    out.push(Err(format!(
                        "metric {:?}: {kind} are not stored yet; export it as a histogram, sum or gauge",
                        metric.name
                    )));
                }
            }
        }
    }
    out
}
