//! Every pure binary decoder in `src/codec/` returns Ok or Err on arbitrary bytes: no panic,
//! no overflow, no unbounded allocation.
#![no_main]
use _native::codec::{datetime, json, net, numeric, text};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, raw)) = data.split_first() else { return };
    match which % 14 {
        0 => drop(numeric::to_text(raw)),
        1 => drop(datetime::decode_date(raw)),
        2 => drop(datetime::decode_time(raw)),
        3 => drop(datetime::decode_timetz(raw)),
        4 => {
            if let Ok(us) = datetime::timestamp_micros(raw) {
                drop(datetime::decode_timestamp_micros(us));
            }
        }
        5 => {
            if let Ok(iv) = datetime::decode_interval(raw) {
                let _ = iv.total_days();
                drop(datetime::hms_from_micros(iv.micros));
            }
        }
        6 => drop(net::inet_to_text(raw)),
        7 => drop(net::mac_to_text(raw)),
        8 => drop(text::bits_to_text(raw)),
        9 => drop(text::money_to_text(raw)),
        10 => drop(text::tsvector_to_text(raw)),
        11 => drop(text::tsquery_to_text(raw)),
        12 => drop(json::integers_fit_i64(raw)),
        _ => {
            // The calendar helpers on any day count / date the decoders could produce.
            if raw.len() >= 8 {
                let z = i64::from_be_bytes(raw[..8].try_into().unwrap()) % (1 << 40);
                let (y, m, d) = datetime::civil_from_days(z);
                assert_eq!(datetime::days_from_civil(y, m, d), z, "civil round trip of day {z}");
            }
        }
    }
});
