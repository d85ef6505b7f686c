//! The command line.

pub const USAGE: &str =
    "usage: prometheus [--port PORT] [--serve [--rate PER_SECOND]] [--prometheus URL]";

pub struct Args {
    /// The exporter's port on 127.0.0.1.
    pub port: u16,
    /// Keep running after the demo, sending `rate` requests a second, until Ctrl-C.
    pub serve: bool,
    pub rate: f64,
    /// A Prometheus that scrapes this process: check the dashboard's answers against the run.
    pub prometheus: Option<String>,
}

pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        port: 9000,
        serve: false,
        rate: 2.0,
        prometheus: None,
    };
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) => (name.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        if name == "--serve" {
            parsed.serve = true;
            continue;
        }
        let value = match inline.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("{name} needs a value")),
        };
        match name.as_str() {
            "--port" => {
                parsed.port = value
                    .parse()
                    .map_err(|e| format!("--port {value:?}: {e}"))?
            }
            "--rate" => {
                parsed.rate = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r > 0.0 && *r <= 1000.0)
                    .ok_or(format!(
                        "--rate {value:?}: a number of requests per second, 0 to 1000"
                    ))?
            }
            "--prometheus" => parsed.prometheus = Some(value),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(parsed)
}
