BEGIN TRANSACTION;
CREATE TABLE auth_cache (
            id_tag        TEXT PRIMARY KEY COLLATE NOCASE,
            status        TEXT NOT NULL,
            parent_id_tag TEXT,
            expiry        TEXT,
            updated_at    TEXT NOT NULL
        ) WITHOUT ROWID;
CREATE TABLE availability (
            connector_id INTEGER PRIMARY KEY,
            operative    INTEGER NOT NULL
        );
CREATE TABLE journal (
            seq        INTEGER PRIMARY KEY,           -- delivery order
            ref        TEXT    NOT NULL,              -- the core's ref, the OCPP unique id
            kind       TEXT    NOT NULL,              -- StartTransaction, MeterValues, ...
            tx_ref     INTEGER,
            body       TEXT    NOT NULL,              -- JSON, see agent.journal
            attempts   INTEGER NOT NULL DEFAULT 0,
            not_before REAL    NOT NULL DEFAULT 0     -- UTC epoch seconds, 0: due now
        );
INSERT INTO "journal" VALUES(1,'m1.2','MeterValues',1,'{"connector_id":1,"tx_ref":1,"samples":[{"timestamp":"2026-11-30T08:00:20+00:00","values":[{"measurand":"Energy.Active.Import.Register","value":1021.0,"unit":"Wh","phase":null}],"context":"Sample.Periodic"}]}',0,0.0);
INSERT INTO "journal" VALUES(2,'m1.3','MeterValues',1,'{"connector_id":1,"tx_ref":1,"samples":[{"timestamp":"2026-11-30T08:00:30+00:00","values":[{"measurand":"Energy.Active.Import.Register","value":1031.5,"unit":"Wh","phase":null}],"context":"Sample.Periodic"}]}',0,0.0);
INSERT INTO "journal" VALUES(3,'t1','StopTransaction',1,'{"tx_ref":1,"meter_stop_wh":1040,"timestamp":"2026-11-30T08:00:35+00:00","reason":"Local","id_tag":"CAFE0001","transaction_data":[{"timestamp":"2026-11-30T08:00:30+00:00","values":[{"measurand":"Energy.Active.Import.Register","value":1031.5,"unit":"Wh","phase":null}],"context":"Sample.Periodic"}]}',0,0.0);
INSERT INTO "journal" VALUES(4,'s2','StartTransaction',2,'{"tx_ref":2,"connector_id":2,"id_tag":"BEEF0002","meter_start_wh":7000,"timestamp":"2026-11-30T08:00:40+00:00","reservation_id":null}',0,0.0);
INSERT INTO "journal" VALUES(5,'m2.1','MeterValues',2,'{"connector_id":2,"tx_ref":2,"samples":[{"timestamp":"2026-11-30T08:00:50+00:00","values":[{"measurand":"Energy.Active.Import.Register","value":7012.0,"unit":"Wh","phase":null}],"context":"Sample.Periodic"}]}',0,0.0);
CREATE TABLE local_list (
            id_tag        TEXT PRIMARY KEY COLLATE NOCASE,
            status        TEXT NOT NULL,
            parent_id_tag TEXT,
            expiry        TEXT
        ) WITHOUT ROWID;
CREATE TABLE local_list_version (
            id      INTEGER PRIMARY KEY CHECK (id = 0),
            version INTEGER NOT NULL
        );
INSERT INTO "local_list_version" VALUES(0,0);
CREATE TABLE schema_version (version INTEGER);
INSERT INTO "schema_version" VALUES(1);
CREATE TABLE settings (
            name  TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
CREATE TABLE transactions (
            tx_ref           INTEGER PRIMARY KEY,
            connector_id     INTEGER NOT NULL,
            id_tag           TEXT    NOT NULL,
            meter_start      INTEGER NOT NULL,
            started_at       TEXT    NOT NULL,
            transaction_id   INTEGER,                 -- the CSMS's, from StartTransaction.conf
            last_meter_wh    REAL,
            last_meter_at    TEXT,
            last_activity_at TEXT    NOT NULL,        -- the newest timestamp journaled for it
            stopped          INTEGER NOT NULL DEFAULT 0,
            stop_reason      TEXT,
            meter_stop       INTEGER,
            stopped_at       TEXT,
            start_confirmed  INTEGER NOT NULL DEFAULT 0,
            stop_confirmed   INTEGER NOT NULL DEFAULT 0
        );
INSERT INTO "transactions" VALUES(1,1,'CAFE0001',1000,'2026-11-30T08:00:00+00:00',501,1031.5,'2026-11-30T08:00:30+00:00','2026-11-30T08:00:35+00:00',1,'Local',1040,'2026-11-30T08:00:35+00:00',1,0);
INSERT INTO "transactions" VALUES(2,2,'BEEF0002',7000,'2026-11-30T08:00:40+00:00',NULL,7012.0,'2026-11-30T08:00:50+00:00','2026-11-30T08:00:50+00:00',0,NULL,NULL,NULL,0,0);
COMMIT;
