//! THE type table: PostgreSQL types → decoders (decode.rs; containers.rs for arrays,
//! ranges, hstore), Python values → parameters (encode.rs). Pure byte-level work lives in
//! `crate::codec`.
mod containers;
pub mod decode;
pub mod encode;
pub mod json;
pub mod pyrefs;
pub mod str_cache;

pub use decode::{DecodeCtx, Decoder};

/// Well-known type OIDs (pg_type.dat).
pub mod oid {
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const CHAR: u32 = 18;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const REGPROC: u32 = 24;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const XID: u32 = 28;
    pub const CID: u32 = 29;
    pub const JSON: u32 = 114;
    pub const XML: u32 = 142;
    pub const CIDR: u32 = 650;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const MONEY: u32 = 790;
    pub const MACADDR8: u32 = 774;
    pub const MACADDR: u32 = 829;
    pub const INET: u32 = 869;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const DATE: u32 = 1082;
    pub const TIME: u32 = 1083;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const INTERVAL: u32 = 1186;
    pub const TIMETZ: u32 = 1266;
    pub const BIT: u32 = 1560;
    pub const VARBIT: u32 = 1562;
    pub const NUMERIC: u32 = 1700;
    pub const REGCLASS: u32 = 2205;
    pub const REGTYPE: u32 = 2206;
    pub const UUID: u32 = 2950;
    pub const TSVECTOR: u32 = 3614;
    pub const TSQUERY: u32 = 3615;
    pub const PG_LSN: u32 = 3220;
    pub const XID8: u32 = 5069;
    pub const JSONB: u32 = 3802;
    pub const INT4RANGE: u32 = 3904;
    pub const NUMRANGE: u32 = 3906;
    pub const TSRANGE: u32 = 3908;
    pub const TSTZRANGE: u32 = 3910;
    pub const DATERANGE: u32 = 3912;
    pub const INT8RANGE: u32 = 3926;

    /// The array type of a scalar type, for typed array parameters.
    pub fn array_of(elem: u32) -> Option<u32> {
        Some(match elem {
            BOOL => 1000,
            BYTEA => 1001,
            CHAR => 1002,
            NAME => 1003,
            INT2 => 1005,
            INT4 => 1007,
            TEXT => 1009,
            BPCHAR => 1014,
            VARCHAR => 1015,
            INT8 => 1016,
            FLOAT4 => 1021,
            FLOAT8 => 1022,
            OID => 1028,
            TIMESTAMP => 1115,
            DATE => 1182,
            TIME => 1183,
            TIMESTAMPTZ => 1185,
            INTERVAL => 1187,
            NUMERIC => 1231,
            TIMETZ => 1270,
            UUID => 2951,
            JSON => 199,
            JSONB => 3807,
            INET => 1041,
            CIDR => 651,
            MONEY => 791,
            _ => return None,
        })
    }

    /// PostgreSQL's name for a type, used in client-side `'...'::type` literals.
    pub fn sql_name(oid: u32) -> Option<&'static str> {
        Some(match oid {
            BOOL => "bool",
            BYTEA => "bytea",
            INT8 => "int8",
            INT2 => "int2",
            INT4 => "int4",
            TEXT => "text",
            OID => "oid",
            JSON => "json",
            FLOAT4 => "float4",
            FLOAT8 => "float8",
            INET => "inet",
            CIDR => "cidr",
            DATE => "date",
            TIME => "time",
            TIMESTAMP => "timestamp",
            TIMESTAMPTZ => "timestamptz",
            INTERVAL => "interval",
            TIMETZ => "timetz",
            NUMERIC => "numeric",
            UUID => "uuid",
            JSONB => "jsonb",
            INT4RANGE => "int4range",
            NUMRANGE => "numrange",
            TSRANGE => "tsrange",
            TSTZRANGE => "tstzrange",
            DATERANGE => "daterange",
            INT8RANGE => "int8range",
            1000 => "bool[]",
            1001 => "bytea[]",
            1005 => "int2[]",
            1007 => "int4[]",
            1009 => "text[]",
            1016 => "int8[]",
            1021 => "float4[]",
            1022 => "float8[]",
            1028 => "oid[]",
            1115 => "timestamp[]",
            1182 => "date[]",
            1183 => "time[]",
            1185 => "timestamptz[]",
            1187 => "interval[]",
            1231 => "numeric[]",
            1270 => "timetz[]",
            2951 => "uuid[]",
            199 => "json[]",
            3807 => "jsonb[]",
            1041 => "inet[]",
            651 => "cidr[]",
            _ => return None,
        })
    }
}
